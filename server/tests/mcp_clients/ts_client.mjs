// Drives /mcp with the official MCP TypeScript SDK, as an agent would.
// Usage: node ts_client.mjs URL TOKEN — lists the tools, calls list_collections and
// list_endpoints, and prints one JSON document for the Rust test to check.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "portcullis-test", version: "1.0.0" });
try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const collections = await client.callTool({ name: "list_collections", arguments: {} });
  const endpoints = await client.callTool({ name: "list_endpoints", arguments: {} });
  const out = {
    protocolVersion: transport.protocolVersion ?? null,
    server: client.getServerVersion()?.name ?? null,
    sessionId: transport.sessionId ?? null,
    tools,
    collections: collections.structuredContent,
    endpoints: endpoints.structuredContent,
  };
  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`${e?.name}: ${e?.message}`);
  process.exit(2);
}
