"""A redis-py application: commands, a transactional and a plain pipeline, pub/sub."""

import sys
import time

import redis
from _truth import report

r = redis.Redis.from_url(sys.argv[1], decode_responses=True)
pipelined = []  # the commands each pipeline sent, as the application queued them


def run(pipe):
    pipelined.append([command[0][0] for command in pipe.command_stack])
    return pipe.execute()


r.set("book:9780306406157", "Numbers")
r.execute_command("SET book:9780140449136 Odyssey")  # one string, split by redis-py
print("get", r.get("book:9780306406157"), r.get("book:missing"))
print("mget", r.mget("book:9780306406157", "book:9780140449136", "book:none"))
r.hset("shelf:1", mapping={"a": "1", "b": "2"})
print("hget", r.hget("shelf:1", "a"), r.hgetall("shelf:1"), r.hgetall("shelf:none"))
print("incr", r.incr("counter"), r.incr("counter", 5))
r.expire("counter", 100)

with r.pipeline() as pipe:  # MULTI ... EXEC
    pipe.set("tx:1", "a").incr("tx:count").get("tx:1").get("tx:missing").delete("book:none")
    print("transaction", run(pipe))
with r.pipeline(transaction=False) as pipe:
    for i in range(4):
        pipe.set(f"plain:{i}", i)
    pipe.mget("plain:0", "plain:9").hget("shelf:1", "b")
    print("pipeline", run(pipe))
with r.pipeline(transaction=False) as pipe:
    pipe.get("plain:1").get("plain:2")
    print("reads", run(pipe))

pubsub = r.pubsub()
pubsub.subscribe("news")
assert pubsub.get_message(timeout=5)["type"] == "subscribe"
for i in range(3):
    r.publish("news", f"story {i}")
received, deadline = [], time.monotonic() + 10
while len(received) < 3 and time.monotonic() < deadline:
    message = pubsub.get_message(timeout=1)
    if message and message["type"] == "message":
        received.append(message["data"])
print("received", received)
pubsub.close()
print("deleted", r.delete("plain:0", "plain:1", "plain:none"))
report(pipelined=pipelined)
