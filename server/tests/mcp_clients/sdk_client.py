"""Drives /mcp with the official MCP Python SDK, 1.x or 2.x, as an agent would.

Usage: python sdk_client.py URL TOKEN [manage]
Connects over Streamable HTTP with `Authorization: Bearer TOKEN`, lists the tools, and
calls each of them once (execute_endpoint on the first endpoint it may call that needs
no path parameters). With `manage`, the Management MCP instead (/mcp/manage, a personal
access token): whoami, register_client, list_clients. Prints one JSON document for the
Rust test to check; exits non-zero with the error on stderr when the SDK cannot connect.

1.x speaks the 2025-11-25 handshake. 2.x (mode "auto") probes `server/discover` first
and adopts 2026-07-28 when the server answers it.
"""

import asyncio
import json
import sys




def structured(result):
    value = getattr(result, "structuredContent", None)
    if value is None:
        value = getattr(result, "structured_content", None)
    return value


def is_error(result):
    value = getattr(result, "isError", None)
    if value is None:
        value = getattr(result, "is_error", None)
    return bool(value)


MANAGE = len(sys.argv) > 3 and sys.argv[3] == "manage"


async def exercise(call_tool, list_tools):
    tools = [t.name for t in (await list_tools()).tools]
    calls = {}

    async def call(name, args):
        result = await call_tool(name, args)
        calls[name] = {"isError": is_error(result), "structured": structured(result)}
        return structured(result) or {}

    if MANAGE:
        await call("whoami", {})
        await call("register_client", {"name": "Made by an MCP SDK", "kind": "service"})
        await call("list_clients", {})
        return tools, calls
    await call("list_collections", {})
    endpoints = (await call("list_endpoints", {})).get("endpoints", [])
    plain = [e for e in endpoints if "{" not in e["path"] and e["method"] == "GET"]
    if plain:
        await call("endpoint_details", {"endpoint_id": plain[0]["id"]})
        await call("execute_endpoint", {"endpoint_id": plain[0]["id"]})
    return tools, calls


async def run_v1(url, token):
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, _session_id):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools, calls = await exercise(session.call_tool, session.list_tools)
                return init.protocolVersion, init.serverInfo.name, tools, calls


async def run_v2(url, token):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
            tools, calls = await exercise(client.call_tool, client.list_tools)
            info = client.server_info
            return client.protocol_version, info.name if info else None, tools, calls


def main():
    url, token = sys.argv[1], sys.argv[2]
    from importlib.metadata import version

    sdk = version("mcp")
    runner = run_v2 if sdk.startswith("2.") else run_v1
    try:
        protocol, server, tools, calls = asyncio.run(runner(url, token))
    except BaseException as e:  # report the innermost error of an ExceptionGroup
        leaf = e
        while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
            leaf = leaf.exceptions[0]
        print(f"{type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 2
    print(json.dumps({"sdk": sdk, "protocolVersion": protocol, "server": server, "tools": tools, "calls": calls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
