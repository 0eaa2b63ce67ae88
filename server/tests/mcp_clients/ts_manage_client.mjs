// Drives the Management MCP (/mcp/manage) with the official MCP TypeScript SDK, as a
// person's automation would. Usage: node ts_manage_client.mjs URL TOKEN — lists the
// tools, calls whoami and list_clients in a session, ends it, and prints one JSON
// document for the Rust test to check.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "portcullis-manage-test", version: "1.0.0" });
try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools;
  const whoami = await client.callTool({ name: "whoami", arguments: {} });
  const clients = await client.callTool({ name: "list_clients", arguments: {} });
  const out = {
    server: client.getServerVersion()?.title ?? client.getServerVersion()?.name ?? null,
    sessionId: transport.sessionId ?? null,
    tools: tools.map((t) => ({ name: t.name, annotations: t.annotations })),
    whoami: whoami.structuredContent,
    clients: clients.structuredContent,
  };
  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`${e?.name}: ${e?.message}`);
  process.exit(2);
}
