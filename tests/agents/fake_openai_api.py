#!/usr/bin/env python3
"""A small fake of the OpenAI Responses API, enough for the real `codex`
CLI (exec or app-server) to run a prompt offline (tests/agents/README.md).

  fake_openai_api.py [--port 0] [--log FILE] [--parent-pipe]

POST /v1/responses (server-sent events; codex speaks only this wire API),
GET /v1/models; anything else is a JSON 404. The last user message steers:
  FAIL401 / FAIL500 / FAIL429   that HTTP error
  HANG                          the stream starts and then stalls
  USE_TOOL [RUN: cmd]           a shell function_call (`echo hello` by default)
  a function_call_output        "The command printed <output>. Done."
  anything else                 "hi from fake openai"
"""
import json
import uuid

import fakeapi_common as common

ERROR_TYPES = {401: "invalid_api_key", 429: "rate_limit_exceeded", 500: "server_error"}
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")


def items_of(body):
    items = body.get("input") or []
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": items}]
    return [it for it in items if isinstance(it, dict)]


def message_text(item):
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def last_turn(body):
    """(text of the last user message, tool output after it or None)."""
    items = items_of(body)
    for i in range(len(items) - 1, -1, -1):
        it = items[i]
        if it.get("type", "message") == "message" and it.get("role") == "user":
            outputs = [o for o in items[i + 1:] if o.get("type") in OUTPUT_TYPES]
            return message_text(it), (tool_output_text(outputs[-1]) if outputs else None)
    return "", None


def tool_output_text(item):
    """The command's own output: codex wraps it ("... Output:\\nhello")."""
    out = item.get("output")
    if isinstance(out, dict):
        out = out.get("content") or out.get("output") or ""
    if isinstance(out, list):
        out = "".join(p.get("text", "") for p in out if isinstance(p, dict))
    out = out if isinstance(out, str) else json.dumps(out)
    if "Output:\n" in out:
        out = out.split("Output:\n", 1)[1]
    return out


def shell_call(body, cmd):
    """A function_call for whichever shell tool this codex build offers."""
    names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if "exec_command" in names:
        name, args = "exec_command", {"cmd": cmd}
    elif "shell_command" in names:
        name, args = "shell_command", {"command": cmd}
    else:
        name, args = "shell", {"command": ["bash", "-lc", cmd]}
    return {"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:16],
            "call_id": "call_" + uuid.uuid4().hex[:16], "name": name,
            "arguments": json.dumps(args), "status": "completed"}


def text_message(text):
    return {"type": "message", "role": "assistant", "id": "msg_" + uuid.uuid4().hex[:16],
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def reply_items(body, text, tool_output):
    if tool_output is not None:
        first = tool_output.strip().splitlines()[0] if tool_output.strip() else ""
        return [text_message(f"The command printed {first}. Done.")]
    if "USE_TOOL" in text:
        return [shell_call(body, common.tool_command(text))]
    return [text_message("hi from fake openai")]


class OpenAIHandler(common.Handler):
    def not_found(self):
        self.send_json(404, {"error": {"message": "fake: no " + self.path,
                                       "type": "not_found"}})

    def do_GET(self):
        self.record()
        if self.path.split("?")[0] == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [
                {"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "fake"}]})
        self.not_found()

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        if self.path.split("?")[0] != "/v1/responses":
            return self.not_found()
        text, tool_output = last_turn(body)
        code = common.fail_code(text) if tool_output is None else None
        if code is not None:
            return self.send_json(code, {"error": {"message": f"fake {code} for testing",
                                                   "type": ERROR_TYPES[code],
                                                   "code": ERROR_TYPES[code]}})
        self.stream(body, reply_items(body, text, tool_output),
                    hang="HANG" in text and tool_output is None)

    def stream(self, body, items, hang):
        resp_id = "resp_" + uuid.uuid4().hex[:16]
        model = body.get("model", "gpt-fake")
        self.start_sse()
        self.sse("response.created", {"type": "response.created", "response": {
            "id": resp_id, "object": "response", "model": model, "status": "in_progress"}})
        if hang:
            return self.hang()
        for i, it in enumerate(items):
            added = dict(it, content=[]) if it["type"] == "message" else it
            self.sse("response.output_item.added", {"type": "response.output_item.added",
                                                    "output_index": i, "item": added})
            if it["type"] == "message":
                self.sse("response.output_text.delta", {
                    "type": "response.output_text.delta", "item_id": it["id"],
                    "output_index": i, "content_index": 0,
                    "delta": it["content"][0]["text"]})
            self.sse("response.output_item.done", {"type": "response.output_item.done",
                                                   "output_index": i, "item": it})
        self.sse("response.completed", {"type": "response.completed", "response": {
            "id": resp_id, "object": "response", "model": model, "status": "completed",
            "output": items,
            "usage": {"input_tokens": 13, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 18}}})


if __name__ == "__main__":
    common.serve(common.parse_args("fake OpenAI Responses API"), OpenAIHandler)
