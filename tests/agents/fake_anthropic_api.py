#!/usr/bin/env python3
"""A small fake of the Anthropic Messages API, enough for the real `claude`
CLI to run a prompt offline (tests/agents/README.md).

  fake_anthropic_api.py [--port 0] [--log FILE] [--parent-pipe]

POST /v1/messages (stream or not), POST /v1/messages/count_tokens,
HEAD / (200); anything else is a JSON 404. The last user message steers:
  FAIL401 / FAIL500 / FAIL429   that HTTP error
  HANG                          the stream starts and then stalls
  USE_TOOL [RUN: cmd]           a Bash tool_use (`echo hello` by default)
  a tool_result                 "The command printed <output>. Done."
  anything else                 "hi from fake anthropic"
"""
import json
import uuid

import fakeapi_common as common

ERROR_TYPES = {401: "authentication_error", 429: "rate_limit_error", 500: "api_error"}
USAGE = {"input_tokens": 11, "output_tokens": 7,
         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def block_text(block):
    """The text of a content block or of a tool_result's content."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return block.get("text", "")
    content = block.get("content")
    if isinstance(content, list):
        return "".join(block_text(b) for b in content)
    return content if isinstance(content, str) else ""


def last_user(body):
    """(text, tool_output or None) of the last user message."""
    for m in reversed(body.get("messages") or []):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content, None
        blocks = [b for b in content or [] if isinstance(b, dict)]
        results = [block_text(b) for b in blocks if b.get("type") == "tool_result"]
        text = "\n".join(block_text(b) for b in blocks if b.get("type") == "text")
        return text, ("\n".join(results) if results else None)
    return "", None


def reply_blocks(text, tool_output):
    """The content blocks to answer with, and the stop reason."""
    if tool_output is not None:
        first = tool_output.strip().splitlines()[0] if tool_output.strip() else ""
        return [{"type": "text", "text": f"The command printed {first}. Done."}], "end_turn"
    if "USE_TOOL" in text:
        return [{"type": "text", "text": "Running a command."},
                {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Bash",
                 "input": {"command": common.tool_command(text),
                           "description": "run the requested command"}}], "tool_use"
    return [{"type": "text", "text": "hi from fake anthropic"}], "end_turn"


class AnthropicHandler(common.Handler):
    def do_HEAD(self):
        self.record()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.record()
        self.not_found()

    def not_found(self):
        self.send_json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": "fake: no " + self.path}})

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            return self.send_json(200, {"input_tokens": 42})
        if path != "/v1/messages":
            return self.not_found()
        text, tool_output = last_user(body)
        code = common.fail_code(text) if tool_output is None else None
        if code is not None:
            return self.send_json(code, {"type": "error", "error": {
                "type": ERROR_TYPES[code], "message": f"fake {code} for testing"}},
                headers=(("request-id", "req_fake"),))
        blocks, stop = reply_blocks(text, tool_output)
        model = body.get("model", "claude-fake")
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return self.send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": blocks, "stop_reason": stop, "stop_sequence": None,
                "usage": USAGE})
        self.stream(msg_id, model, blocks, stop, hang="HANG" in text and tool_output is None)

    def stream(self, msg_id, model, blocks, stop, hang):
        self.start_sse()
        self.sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": dict(USAGE, output_tokens=1)}})
        if hang:
            return self.hang()
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                start, delta = {"type": "text", "text": ""}, {"type": "text_delta",
                                                             "text": b["text"]}
            else:
                start = dict(b, input={})
                delta = {"type": "input_json_delta",
                         "partial_json": json.dumps(b["input"])}
            self.sse("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": start})
            self.sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": delta})
            self.sse("content_block_stop", {"type": "content_block_stop", "index": i})
        self.sse("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": USAGE["output_tokens"]}})
        self.sse("message_stop", {"type": "message_stop"})


if __name__ == "__main__":
    common.serve(common.parse_args("fake Anthropic Messages API"), AnthropicHandler)
