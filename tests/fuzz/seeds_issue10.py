#!/usr/bin/env python3
# Writes the seed corpora of fuzz_task, fuzz_ipc_task, fuzz_backend and
# fuzz_msgbatch (tests/fuzz/corpus/<target>/) from the real CLI outputs of
# agent-cli-lab/README.md and the task fields of
# reference/multica-task-execution.md. Run it after changing an input format.
import json, struct, os
root=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
def w(target, name, data):
    if isinstance(data, str): data = data.encode()
    open(os.path.join(root, target, name), 'wb').write(data)

TID='0c8e2f4a-1b3d-4e5f-8a7b-9c0d1e2f3a4b'
TID2='7a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d'
AID='3f6e9a1c-2b4d-4c8e-9f0a-1b2c3d4e5f60'
RID='2b7f4c1e-0d6a-4e83-9f1c-5a9e3b2d7c10'
WID='9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a'
def task(tid=TID, **extra):
    t={"id":tid,"agent_id":AID,"runtime_id":RID,"workspace_id":WID,
       "issue_id":"5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c","status":"dispatched","priority":2,"attempt":1,
       "auth_token":"mat_0123456789abcdef","remote_mcp_daemon_token":"mdt_remote_secret",
       "delivered_comment_ids":[],
       "agent":{"id":AID,"name":"Coder","instructions":"Be brief.","model":"claude-sonnet-4-5",
                "thinking_level":"","custom_env":{"API_KEY":"sk-test","LANG":"C.UTF-8"},
                "custom_args":["--max-turns","5","--append-system-prompt=\"be nice\""],
                "skills":[],"mcp_config":None},
       "prior_session_id":"","prior_work_dir":"","prior_session_resume_unavailable":False,
       "workspace_context":"Team notes","project_title":"Demo","project_description":"",
       "thread_name":"Fix the bug"}
    t.update(extra); return t
j=lambda o: json.dumps(o, separators=(',',':'), ensure_ascii=False)
# fuzz_task: sel%4: 0 task text, 1 batch claim, 2 legacy claim, 3 status
w('fuzz_task','task_assignment', b'\x00'+j(task()).encode())
w('fuzz_task','task_comment', b'\x04'+j(task(trigger_comment_id="1d2c3b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
   trigger_thread_id="", trigger_comment_content="please also fix the tests", trigger_author_type="member",
   trigger_author_name="Ann", coalesced_comment_ids=["x"], coalesced_comments=[{"id":"c1","thread_id":"t","author_type":"member",
   "author_name":"Bob","content":"and the docs","created_at":"2026-01-02T03:04:05Z"}])).encode())
w('fuzz_task','task_chat', b'\x08'+j(task(chat_session_id="6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d", chat_message="hello there",
   chat_type="p2p", issue_id="", prior_session_id="sess-1", prior_work_dir="/var/lib/multicad/ws/x")).encode())
w('fuzz_task','claim_two', b'\x01'+j({"tasks":[task(), task(TID2, handoff_note="continue from here")]}).encode())
w('fuzz_task','claim_empty', b'\x05'+b'{"tasks":[]}')
w('fuzz_task','claim_legacy', b'\x02'+j({"task":task()}).encode())
w('fuzz_task','claim_legacy_null', b'\x06'+b'{"task":null}')
w('fuzz_task','status_running', b'\x03{"status":"running"}')
w('fuzz_task','status_cancelled', b'\x07{"status":"cancelled","id":"x"}')

# fuzz_ipc_task: byte0 side: 0 worker, 1 supervisor, 2 link, 3 from link
def frame(t, payload):
    if isinstance(payload, str): payload=payload.encode()
    return struct.pack('>HHI', t, 0, len(payload)) + payload
def task_frame(slot, tok, t):
    tok=tok.encode()
    return frame(13, struct.pack('>I', len(tok)) + tok + ('{"slot":%d,"task":' % slot).encode() + j(t).encode() + b'}')
t=task(); del t['auth_token']; del t['remote_mcp_daemon_token']
w('fuzz_ipc_task','worker_task', b'\x00' + task_frame(3, "mat_0123456789abcdef", t))
w('fuzz_ipc_task','from_link', b'\x03' + frame(11, '{"want":4}') + task_frame(-1, "mat_abc", t) + frame(14, '{"claimed":1}'))
w('fuzz_ipc_task','to_link', b'\x02' + frame(12, '{"grant":2}') + frame(15, j({"workspace_id":WID,"runtime_ids":[RID,TID2]}))
  + frame(16, '{"reason":"task ended"}') + frame(17, j({"task_id":TID,"runtime_id":RID,"reason":"runtime_offline","error":"no worker hosts runtime"})))
st={"task_id":TID,"runtime_id":RID,"state":"running","pid":4242,"pgid":4242,"family":"claude","last_output":"Running a command.","outcome":""}
st2=dict(st, state="ended", outcome="failed:agent_error", pid=0, pgid=0)
w('fuzz_ipc_task','task_state', b'\x01' + frame(18, j(st)) + frame(18, j(st2)))

# fuzz_backend: b0 bit0 codex, bit1 resume, bits2-4 end, bit5 stderr reject, bit6 argv line, bit7 small max
SID='11db5f9c-2a3b-4c5d-8e9f-0a1b2c3d4e5f'
claude_ok = [
 {"type":"system","subtype":"init","cwd":"/tmp/w","session_id":SID,"tools":["Task","Bash"],"mcp_servers":[],"model":"claude-opus-4-8[1m]","permissionMode":"bypassPermissions","apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.197","uuid":"u1"},
 {"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Running a command."}],"stop_reason":None,"usage":{"input_tokens":11,"output_tokens":1}},"parent_tool_use_id":None,"session_id":SID,"uuid":"u2"},
 {"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"echo hello","description":"say hello"}}],"usage":{"input_tokens":11,"output_tokens":1}},"session_id":SID},
 {"type":"control_request","request_id":"req_1","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"echo hello","run_in_background":True}}},
 {"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"hello","is_error":False}]},"parent_tool_use_id":None,"session_id":SID,"timestamp":"t","tool_use_result":{"stdout":"hello","stderr":"","interrupted":False}},
 {"type":"assistant","message":{"id":"msg_2","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"done now"},{"type":"text","text":"The command printed hello. Done."}],"usage":{"input_tokens":11,"output_tokens":13}},"session_id":SID},
 {"type":"result","subtype":"success","is_error":False,"api_error_status":None,"duration_ms":187,"num_turns":2,"result":"The command printed hello. Done.","stop_reason":"end_turn","session_id":SID,"total_cost_usd":0.000276,"usage":{"input_tokens":22,"output_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":22,"outputTokens":14,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":0.000276,"contextWindow":200000}},"permission_denials":[],"terminal_reason":"completed","uuid":"u9"},
]
lines=lambda L: ('\n'.join(x if isinstance(x,str) else j(x) for x in L) + '\n').encode()
w('fuzz_backend','claude_tool', b'\x00\x00' + lines(claude_ok))
claude_err = [claude_ok[0],
 {"type":"assistant","message":{"id":"m","model":"<synthetic>","content":[{"type":"text","text":"API Error"}]},"error":"authentication_failed","session_id":SID},
 {"type":"result","subtype":"success","is_error":True,"api_error_status":401,"num_turns":1,"result":"Failed to authenticate. API Error: 401 fake 401 for testing","session_id":SID}]
w('fuzz_backend','claude_error', b'\x04\x00' + lines(claude_err))
w('fuzz_backend','claude_max_turns', b'\x04\x00' + lines([claude_ok[0], {"type":"result","subtype":"error_max_turns","is_error":True,"num_turns":2,"stop_reason":"tool_use","terminal_reason":"max_turns","errors":["Reached maximum number of turns (1)"],"session_id":SID}]))
w('fuzz_backend','claude_resume_rejected', bytes([0x02|0x04|0x20, 0]) + lines([{"type":"result","subtype":"error_during_execution","is_error":True,"num_turns":0,"session_id":"5d2c9e0a-7b41-4f3e-8a6d-1c0e9b8f2a47"}]))
w('fuzz_backend','claude_async_and_junk', b'\x00\x00' + lines([claude_ok[0], "not json at all", '{"type":"log","log":{"level":"info","message":"x"}}',
  {"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"{\"status\":\"async_launched\"}"}]}]},"tool_use_result":{"status":"async_launched"}},
  {"type":"result","is_error":False,"result":"bg","session_id":SID,"terminal_reason":"prompt_too_long"}]) + b'{"type":"assistant","message":{"content":[{"type":"text","text":"nul \\u0000 here \xff\xfe"}]}}\n')
w('fuzz_backend','claude_small_lines_cancel', bytes([0x80|(3<<2), 1]) + lines(claude_ok[:5]))
w('fuzz_backend','claude_argv', b'\x40\x00' + b"--model x '--permission-mode' default --output-format=text -p \"--effort\" high --verbose\n" + lines(claude_ok))

TH='01a231f0-f943-7032-a6e9-cb5d5230f969'
def rpc(i, result=None, error=None):
    o={"jsonrpc":"2.0","id":i}
    if error is not None: o["error"]=error
    else: o["result"]=result
    return o
def note(m, p): return {"jsonrpc":"2.0","method":m,"params":p}
codex_v2 = [
 note("configWarning",{"summary":"bubblewrap not on PATH"}),
 rpc(1,{"userAgent":"codex/0.171.0"}),
 rpc(2,{"thread":{"id":TH},"model":"gpt-5.5"}),
 note("thread/started",{"thread":{"id":TH}}),
 rpc(3,{"turn":{"id":"turn-1","status":"inProgress"}}),
 note("turn/started",{"threadId":TH,"turn":{"id":"turn-1"}}),
 {"jsonrpc":"2.0","id":0,"method":"item/commandExecution/requestApproval","params":{"threadId":TH,"command":"echo hello"}},
 note("item/started",{"threadId":TH,"item":{"id":"item_0","type":"commandExecution","command":"/bin/bash -lc 'echo hello'","aggregatedOutput":"","exitCode":None,"status":"inProgress"}}),
 note("item/completed",{"threadId":TH,"item":{"id":"item_0","type":"commandExecution","command":"/bin/bash -lc 'echo hello'","aggregatedOutput":"hello\n","exitCode":0,"status":"completed"}}),
 note("item/agentMessage/delta",{"threadId":TH,"delta":"The"}),
 note("item/completed",{"threadId":"sub-thread","item":{"id":"s","type":"agentMessage","text":"subagent"}}),
 note("item/completed",{"threadId":TH,"item":{"id":"item_1","type":"reasoning","summary":["thinking hard"],"content":[{"text":"raw"}]}}),
 note("item/completed",{"threadId":TH,"item":{"id":"item_2","type":"agentMessage","text":"The command printed hello. Done.","phase":"final_answer"}}),
 note("thread/tokenUsage/updated",{"threadId":TH,"tokenUsage":{"total":{"inputTokens":26,"cachedInputTokens":4,"outputTokens":10},"last":{"inputTokens":26,"cachedInputTokens":4,"outputTokens":10}}}),
 note("turn/completed",{"threadId":TH,"turn":{"id":"turn-1","status":"completed","usage":{"input_tokens":26,"cached_input_tokens":0,"output_tokens":10}}}),
]
w('fuzz_backend','codex_v2', b'\x01\x00' + lines(codex_v2))
w('fuzz_backend','codex_named_thread', b'\x01\x08' + lines(codex_v2[:3] + [rpc(3,{})] + [dict(x, id=4) if x.get("id")==3 else x for x in codex_v2[4:]]))
codex_fail = codex_v2[:6] + [note("error",{"error":{"message":"unexpected status 401 Unauthorized"},"willRetry":False,"threadId":TH}),
 note("turn/completed",{"threadId":TH,"turn":{"id":"turn-1","status":"failed","error":{"message":"unexpected status 401","codexErrorInfo":{"httpConnectionFailed":{"httpStatusCode":401}}}}})]
w('fuzz_backend','codex_failed', b'\x05\x00' + lines(codex_fail))
codex_legacy = codex_v2[:5] + [
 note("codex/event/task_started",{"conversationId":TH,"msg":{"type":"task_started"}}),
 note("codex/event/exec_command_begin",{"conversationId":TH,"msg":{"type":"exec_command_begin","call_id":"c1","command":["bash","-lc","echo hello"]}}),
 note("codex/event/exec_command_end",{"conversationId":TH,"msg":{"type":"exec_command_end","call_id":"c1","aggregated_output":"hello\n"}}),
 note("codex/event/patch_apply_begin",{"conversationId":TH,"msg":{"type":"patch_apply_begin","call_id":"p1","changes":{"a.txt":{"add":{"content":"x"}}}}}),
 note("codex/event/patch_apply_end",{"conversationId":TH,"msg":{"type":"patch_apply_end","call_id":"p1","success":True}}),
 note("codex/event/agent_reasoning",{"conversationId":TH,"msg":{"type":"agent_reasoning","text":"hmm"}}),
 note("codex/event/agent_message",{"conversationId":TH,"msg":{"type":"agent_message","message":"Done."}}),
 note("codex/event/token_count",{"conversationId":TH,"msg":{"type":"token_count","info":{"total_token_usage":{"input_tokens":40,"output_tokens":5},"last_token_usage":{"input_tokens":40,"output_tokens":5}}}}),
 note("item/completed",{"threadId":TH,"item":{"type":"agentMessage","text":"dup in v2"}}),
 note("codex/event/task_complete",{"conversationId":TH,"msg":{"type":"task_complete","last_agent_message":"Done.","usage":{"input_tokens":40,"output_tokens":5}}}),
]
w('fuzz_backend','codex_legacy', b'\x01\x00' + lines(codex_legacy))
codex_resume = [rpc(1,{}), rpc(2,error={"code":-32600,"message":"no rollout found for thread id x"}), rpc(3,{"thread":{"id":TH}}),
  rpc(4,{"turn":{"id":"t"}}), {"jsonrpc":"2.0","id":"x","method":"item/permissions/requestApproval","params":{"permissions":{"network":True}}},
  {"jsonrpc":"2.0","id":9,"method":"mcpServer/elicitation/request","params":{}},
  {"jsonrpc":"2.0","id":10,"method":"some/unknown/request","params":{}},
  note("turn/completed",{"threadId":TH,"turn":{"id":"t","status":"interrupted"}})]
w('fuzz_backend','codex_resume_fallback', b'\x03\x00' + lines(codex_resume))
w('fuzz_backend','codex_handshake_timeout', b'\x01\x0f' + lines([rpc(1,{}), "codex log line"]))
w('fuzz_backend','codex_argv', b'\x41\x00' + b'-c shell_environment_policy.inherit=all --listen ws://x -c model=o3 --config=shell_environment_policy.x=1\n' + lines(codex_v2))

# fuzz_msgbatch: byte0 caps; ops: code (bit7: 2-byte len), len, bytes
def op(code, data):
    if isinstance(data,str): data=data.encode()
    if len(data) > 255: return bytes([code|0x80, len(data)&255, len(data)>>8]) + data
    return bytes([code, len(data)]) + data
w('fuzz_msgbatch','stream', bytes([0x0f]) + op(0,'Running a command.') + op(1,'thinking...') + op(4|(0<<3), '{"command":"echo hello"}')
  + op(5,'hello\n') + op(6,'') + op(0,'The command printed hello.\x00 Done. \xff\xfe bad utf8 \xe2\x82') + op(2,'API Error: 401'))
w('fuzz_msgbatch','tool_inputs', bytes([0x3a]) + op(3|(3<<3), '["not","an","object"]') + op(3, '{"a":{"b":"\\u00e9\\ud83d\\ude00"}}') + op(4|(1<<3), 'not json {')
  + op(4|(2<<3), '') + op(5|(3<<3), 'x'*9000) + op(6,''))
w('fuzz_msgbatch','flood', bytes([0x12]) + op(7|(15<<3), 'flood line of output\n') + op(6,'') + op(0,'after the flood') + op(7|(3<<3), 'y'*200))
