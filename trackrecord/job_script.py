"""An RQ job written in one Redis command: the hash, the queue entry and the queue's name in
RQ's set of queues, exactly as RQ's `Queue.enqueue` writes them, for jobs that differ from one
call to the next only in one integer argument (their id, pickled call and description follow
from it).

Why: RQ's enqueue builds a Job object, pickles and compresses its call, and sends seven commands
in a MULTI, some 60 arguments each encoded by redis-py: about a third of an intake request's
CPU. Here the constant fields are built into a Lua script once per process, and a call sends
a few short arguments a job (EVALSHA), for one job or several. A Lua script runs atomically,
as the MULTI did.

How it stays RQ's job: the script is made from what RQ itself writes. The caller's own enqueue
(`enqueue(pipeline, n)`) is recorded on a pipeline that is never executed, for two sample values
of n. The commands of the first become the script, with what depends on n (every argument that
spells it out in decimal, such as the job's id, key and description; the pickled call) and the
time as arguments. The template is then rendered for the second sample and must equal, command
for command and byte for byte (times aside), what RQ recorded for it; if it does not (an RQ
that writes something else), `JobScript.build` raises `JobShapeChanged` and the caller keeps
RQ's own enqueue. Job.fetch reads the job, and any RQ worker runs it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from redis import Redis
from redis.client import Pipeline
from rq.job import Job
from rq.utils import now, utcformat

# Two values no real argument template spells by accident (the first is spelled in the
# recorded commands wherever n is).
SAMPLES = (918_273_645_501, 918_273_645_502)
# The fields of RQ's job hash that hold a time: the time of the call, not of the recording.
TIME_FIELDS = (b"created_at", b"enqueued_at")

_NUM, _DATA, _TIME = "n", "data", "time"


class JobShapeChanged(Exception):
    """What RQ writes for a job is not what the recorded template would write."""


def _record(redis: Redis, enqueue: Callable[[Pipeline, int], Job], n: int):
    pipe = redis.pipeline()
    try:
        job = enqueue(pipe, n)
        encode = redis.get_encoder().encode
        commands = [[encode(a) for a in args] for args, _options in pipe.command_stack]
    finally:
        pipe.reset()  # nothing was sent
    return job, commands


def _template(job: Job, commands: list[list[bytes]], n: int) -> list[list]:
    """Each argument: bytes (constant), (_NUM, parts) (n spelled between the parts), _DATA or
    _TIME."""
    if job.args != (n,) or job.kwargs or job.instance is not None:
        raise JobShapeChanged("the job's call is not f(n)")
    data = zlib.compress(job.data)
    spelled = str(n).encode()
    out = []
    for command in commands:
        row = []
        for i, arg in enumerate(command):
            if arg == data:
                row.append(_DATA)
            elif command[0].upper() == b"HSET" and i % 2 == 1 and command[i - 1] in TIME_FIELDS:
                row.append(_TIME)
            elif spelled in arg:
                row.append((_NUM, arg.split(spelled)))
            else:
                row.append(arg)
        out.append(row)
    return out


def _render(template: list[list], n: int, data: bytes, time: bytes) -> list[list[bytes]]:
    spelled = str(n).encode()
    values = {_DATA: data, _TIME: time}
    return [
        [
            values[a] if isinstance(a, str) else spelled.join(a[1]) if isinstance(a, tuple) else a
            for a in row
        ]  # fmt: skip
        for row in template
    ]


def _masked(commands: list[list[bytes]]) -> list[list[bytes]]:
    out = []
    for command in commands:
        row = list(command)
        for i in range(2, len(row)):
            if row[0].upper() == b"HSET" and i % 2 == 1 and row[i - 1] in TIME_FIELDS:
                row[i] = b"<time>"
        out.append(row)
    return out


def _lua_string(value: bytes) -> str:
    # Every byte but letters, digits and a few safe marks as a decimal escape: any bytes at all.
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.()"
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03d}" for b in value) + '"'


def _lua(template: list[list]) -> str:
    """The script: one job after another, each with len(template) KEYS (each command's key, its
    first argument, in order) and four ARGV: n spelled out, the compressed call, the time, and,
    when not empty, a field to increment in the hash that is the last of KEYS (a counter for
    /metrics) in the same step."""
    width = len(template)
    lines = ["for j = 0, #ARGV / 4 - 1 do", f"  local k, a = j * {width}, j * 4"]
    for k, row in enumerate(template, start=1):
        args = [_lua_string(row[0]), f"KEYS[k + {k}]"]
        for a in row[2:]:
            if a == _DATA:
                args.append("ARGV[a + 2]")
            elif a == _TIME:
                args.append("ARGV[a + 3]")
            elif isinstance(a, tuple):
                args.append(" .. ARGV[a + 1] .. ".join(_lua_string(p) for p in a[1]))
            else:
                args.append(_lua_string(a))
        lines.append(f"  redis.call({', '.join(args)})")
    lines.append(
        "  if ARGV[a + 4] ~= '' then redis.call('HINCRBY', KEYS[#KEYS], ARGV[a + 4], 1) end"
    )
    lines.append("end")
    return "\n".join(lines) + "\n"


class JobScript:
    """Writes the job `enqueue(pipeline, n)` writes, in one command."""

    def __init__(self, redis: Redis, template: list[list], call: tuple, dumps: Callable):
        self._keys = [row[1] for row in template]
        self._call = call  # (function name, instance, kwargs): all of the pickled call but n
        self._dumps = dumps  # the job's serializer (RQ's pickle by default)
        self._script = redis.register_script(_lua(template))

    @classmethod
    def build(cls, redis: Redis, enqueue: Callable[[Pipeline, int], Job]) -> JobScript:
        """Record RQ's enqueue and check the template against it (JobShapeChanged if it does
        not match); RedisError if Redis does not answer (RQ asks for its version once)."""
        first, second = SAMPLES
        job, commands = _record(redis, enqueue, first)
        template = _template(job, commands, first)
        if any(not isinstance(row[1], bytes | tuple) for row in template):
            raise JobShapeChanged("a command without a key")
        call = (job.func_name, job.instance, job.kwargs)
        script = cls(redis, template, call, job.serializer.dumps)
        job2, want = _record(redis, enqueue, second)
        got = _render(template, second, script.data(second), b"<time>")
        if job2.serializer is not job.serializer or _masked(want) != got:
            raise JobShapeChanged("RQ writes another job than the recorded template")
        return script

    def data(self, n: int) -> bytes:
        """The job's pickled call, compressed, as RQ stores it in the hash's `data`."""
        name, instance, kwargs = self._call
        return zlib.compress(self._dumps((name, instance, (n,), kwargs)))

    def keys(self, n: int) -> list[bytes]:
        spelled = str(n).encode()
        return [k if isinstance(k, bytes) else spelled.join(k[1]) for k in self._keys]

    def write(self, redis: Redis, n: int, count: tuple[str, str] | None = None) -> None:
        """Enqueue the job for n; with `count` (a hash and its field), increment that field in
        the same atomic step."""
        self.write_many(redis, [(n, count)])

    def write_many(self, redis: Redis, jobs: list[tuple[int, tuple[str, str] | None]]) -> None:
        """Enqueue the job of each (n, count) in order, in one command and one atomic step (the
        intake's group of concurrent requests: webhook_app.intake_group). Every count names
        the same hash."""
        keys: list = []
        args: list = []
        time = utcformat(now())
        hashes = {count[0] for _n, count in jobs if count is not None}
        if len(hashes) > 1:
            raise ValueError(f"counts in more than one hash: {sorted(hashes)}")
        for n, count in jobs:
            keys += self.keys(n)
            args += (n, self.data(n), time, "" if count is None else count[1])
        keys += hashes
        self._script(keys=keys, args=args, client=redis)
