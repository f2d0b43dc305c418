"""Chaos scenario: kill an instance and restart Redis under load; prove nothing is lost.

    python -m loadtests.chaos                 # 20 senders + 2 readers per room, ~60 s
    python -m loadtests.chaos --short         # 4 senders, one kill, one Redis restart: ~35 s

A throwaway PostgreSQL and Redis, migrated; two Roomcast instances (`run.py serve`) over
them. Accounts are registered through the API and invited into one team with a few
rooms. Senders (each its own account, spread over the rooms and both instances) send at
a steady rate with unique `client_id`s, readers only read, and all of them follow
protocol.md's "Losing nothing" (loadtests/chaos_client.py). Meanwhile Redis is stopped
and started on its port, and one instance is killed with SIGKILL and started again, at
the given times (the traffic goes on until the last of them is done). Then the clients
stop making messages, the outboxes drain and the readers catch up (at most --settle s),
and each room's history is read back through `GET /api/v1/rooms/{id}/messages` and
compared with what every client was acked and received (loadtests/chaos_audit.py).
Every figure but `acked` and `stored` must be 0: the exit status is 1 when one is not
or a chaos event failed, 2 on a setup error, 130/143 on Ctrl-C/SIGTERM; every process
started is stopped in all cases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

from loadtests.chaos_audit import Audit, audit, read_history
from loadtests.chaos_client import ChaosClient
from storage import migrate
from tests.accounts import DEFAULT_PASSWORD
from tests.instances import Instance, InstanceFailed, Instances, instance_env
from tests.services import PostgresServer, RedisServer

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)
SETUP_CONCURRENCY = 8


def _moment(text: str) -> float | None:
    """Seconds into the run, or None for "off"."""
    return None if text.lower() in ("off", "none", "never") else float(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.chaos",
        description=__doc__.split("\n\n")[0],
        epilog="Times are seconds from the start of the traffic; 'off' skips that event. "
        "Redis restarts first by default, while both instances carry clients: after the "
        "kill, every client reconnects to the survivor and stays there.",
    )
    add = parser.add_argument
    add("--clients", type=int, default=20, help="sending clients, one account each (20)")
    add("--readers", type=int, default=2, help="reading clients per room (2)")
    add("--rooms", type=int, default=4, help="rooms in the team (4)")
    add("--rate", type=float, default=5.0, help="messages/s each sender makes (5)")
    add("--duration", type=float, default=60.0, help="seconds of traffic (60)")
    add("--kill-at", type=_moment, default=30.0, help="SIGKILL an instance at (30)")
    add("--restart-at", type=_moment, default=40.0, help="start it again at (40)")
    add("--kill", choices=("a", "b"), default="b", help="which instance to kill (b)")
    add("--redis-at", type=_moment, default=15.0, help="stop Redis at (15)")
    add("--redis-down", type=float, default=2.0, help="seconds Redis stays down (2)")
    add("--settle", type=float, default=30.0, help="max seconds to drain and catch up (30)")
    add("--backoff", type=float, default=0.5, help="first reconnect backoff, s (0.5)")
    add("--backoff-max", type=float, default=5.0, help="backoff ceiling, s (5)")
    add("--resend-after", type=float, default=10.0, help="resend a send with no reply (10)")
    add("--seed", type=int, default=None, help="random seed of the clients' jitter")
    add("--logs", type=Path, help="keep the instances' logs here (default: a temp dir)")
    add("--verbose", action="store_true", help="print a line per client too")
    add("--short", action="store_true", help="4 senders, 2 rooms, 12 s of traffic")
    args = parser.parse_args(argv)
    if args.short:
        args.clients, args.readers, args.rooms, args.duration = 4, 1, 2, 12.0
        args.redis_at, args.redis_down, args.kill_at, args.restart_at = 2.0, 1.5, 5.0, 7.0
        args.settle = min(args.settle, 20.0)
    _check(parser, args)
    if args.seed is None:
        args.seed = random.randrange(2**32)
    return args


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (1 <= args.clients <= 500 and 0 <= args.readers <= 50 and 1 <= args.rooms <= 100):
        parser.error("--clients 1..500, --readers 0..50, --rooms 1..100")
    if not (0 < args.rate <= 50 and 1 <= args.duration <= 600 and 1 <= args.settle <= 120):
        parser.error("--rate 0..50, --duration 1..600, --settle 1..120")
    if (args.kill_at is None) != (args.restart_at is None):
        parser.error("--kill-at and --restart-at are both set or both off")
    if args.kill_at is not None and not 0 <= args.kill_at < args.restart_at <= args.duration:
        parser.error("need 0 <= --kill-at < --restart-at <= --duration")
    if args.redis_at is not None and not 0 <= args.redis_at + args.redis_down <= args.duration:
        parser.error("Redis must be back by the end: --redis-at + --redis-down <= --duration")


def _say(line: str = "") -> None:
    print(line, flush=True)  # noqa: T201


class Clock:
    """Seconds since the traffic started, for the timeline."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def since(self, moment: float | None = None) -> float:
        return (time.monotonic() if moment is None else moment) - self.start

    def say(self, line: str) -> None:
        _say(f"  t={self.since():6.2f} s  {line}")


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None = None,
    json: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON answer of a REST call. Raises RuntimeError on any status but 2xx."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(
        method, url, headers=headers, json=json, timeout=HTTP_TIMEOUT
    ) as answer:
        if answer.status >= 300:
            raise RuntimeError(f"{method} {url}: {answer.status} {await answer.text()}")
        return dict(await answer.json())


async def _account(http: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str, str]:
    """Register and log in `name`: its (user id, email, access token)."""
    email = f"{name}@chaos.example"
    body = {"email": email, "password": DEFAULT_PASSWORD, "name": name}
    user = await _call(http, "POST", f"{base}/api/v1/auth/register", json=body)
    login = {"email": email, "password": DEFAULT_PASSWORD}
    tokens = await _call(http, "POST", f"{base}/api/v1/auth/login", json=login)
    return str(user["id"]), email, str(tokens["access_token"])


async def _setup_accounts(
    http: aiohttp.ClientSession, base: str, names: list[str], rooms: int
) -> tuple[str, list[str], list[str]]:
    """An owner with a team of `rooms` rooms, and `names` invited into it.

    Returns the owner's token, the room ids and each name's token, in order.
    """
    _owner_id, _email, owner = await _account(http, base, "owner")
    team = await _call(http, "POST", f"{base}/api/v1/teams", owner, json={"name": "chaos"})
    rooms_url = f"{base}/api/v1/teams/{team['id']}/rooms"
    room_ids = [
        str((await _call(http, "POST", rooms_url, owner, json={"name": f"r{i}"}))["id"])
        for i in range(rooms)
    ]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def member(name: str) -> str:
        async with gate:
            _user, email, token = await _account(http, base, name)
            invite_url = f"{base}/api/v1/teams/{team['id']}/invitations"
            invitation = await _call(http, "POST", invite_url, owner, json={"email": email})
            accept = f"{base}/api/v1/invitations/{invitation['token']}/accept"
            await _call(http, "POST", accept, token)
            return token

    return owner, room_ids, list(await asyncio.gather(*(member(name) for name in names)))


def _clients(
    args: argparse.Namespace, urls: list[str], rooms: list[str], tokens: list[str]
) -> list[ChaosClient]:
    """Senders s00.. round-robin over rooms, then readers; first connections alternate."""
    rng = random.Random(args.seed)  # parse_args chose one when none was given
    names = _names(args)
    clients = []
    for index, (name, token) in enumerate(zip(names, tokens, strict=True)):
        sender = index < args.clients
        room = rooms[index % len(rooms) if sender else (index - args.clients) % len(rooms)]
        first = urls[index % len(urls)]
        clients.append(
            ChaosClient(
                name,
                token,
                room,
                [first, *[url for url in urls if url != first]],
                rate=args.rate if sender else 0.0,
                rng=random.Random(rng.random()),
                backoff=(args.backoff, args.backoff_max),
                resend_after=args.resend_after,
            )
        )
    return clients


def _names(args: argparse.Namespace) -> list[str]:
    readers = args.readers * args.rooms
    return [f"s{i:02d}" for i in range(args.clients)] + [f"r{i:02d}" for i in range(readers)]


async def _chaos(
    args: argparse.Namespace, clock: Clock, victim: Instance, redis: RedisServer
) -> int:
    """The kill/restart and the Redis stop/start, each chain on its own; how many failed.

    A chain's second step waits for its first, so Redis stays down --redis-down seconds
    and the instance stays dead until --restart-at even if a step ran late.
    """
    chains = []
    if args.kill_at is not None:
        chains.append(
            _chain(
                clock,
                (args.kill_at, f"SIGKILL instance {victim.name} (pid {victim.pid})", victim.kill),
                (args.restart_at - args.kill_at, f"start instance {victim.name}", victim.start),
            )
        )
    if args.redis_at is not None:
        chains.append(
            _chain(
                clock,
                (
                    args.redis_at,
                    f"stop Redis (:{redis.port})",
                    partial(asyncio.to_thread, redis.stop),
                ),
                (args.redis_down, "start Redis, empty", partial(asyncio.to_thread, redis.start)),
            )
        )
    return sum(await asyncio.gather(*chains))


async def _chain(
    clock: Clock,
    first: tuple[float, str, Callable[[], Awaitable[None]]],
    then: tuple[float, str, Callable[[], Awaitable[None]]],
) -> int:
    """`first` at its time, `then` its delay after `first` is done; how many failed."""
    at = first[0]
    await asyncio.sleep(max(0.0, at - clock.since()))
    for step, (delay, label, action) in enumerate((first, then)):
        if step:
            await asyncio.sleep(delay)
        clock.say(label)
        try:
            await action()
        except (InstanceFailed, RuntimeError, OSError) as exc:
            clock.say(f"FAILED: {label}: {exc}")
            return 1
        clock.say(f"done: {label}")
    return 0


async def _revive(group: Instances, clock: Clock) -> int:
    """Start instances that are down at the end (a failed restart, or a kill from outside).

    Returns how many were down: each one fails the run, but the audit can still be made.
    """
    down = [instance for instance in group if not instance.running]
    for instance in down:
        clock.say(f"instance {instance.name} is not running at the end; starting it")
        try:
            await instance.start()
        except InstanceFailed as exc:
            clock.say(f"FAILED: start instance {instance.name}: {exc}")
    return len(down)


async def _settle(
    http: aiohttp.ClientSession, base: str, owner: str, clients: list[ChaosClient], limit: float
) -> float:
    """Wait until every outbox is empty and every client has its room's last seq."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if not any(client.unacked() for client in clients):
            with contextlib.suppress(aiohttp.ClientError, RuntimeError, TimeoutError):
                last = {}
                for room in {client.room for client in clients}:
                    answer = await _call(http, "GET", f"{base}/api/v1/rooms/{room}", owner)
                    last[room] = int(answer["last_seq"])
                if all(client.highest >= last[client.room] for client in clients):
                    break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def _traffic(
    args: argparse.Namespace,
    group: Instances,
    redis: RedisServer,
    http: aiohttp.ClientSession,
) -> tuple[Audit, int]:
    """Accounts, rooms, the clients' run with the chaos events, settling and the audit."""
    urls = [instance.url for instance in group]
    owner, rooms, tokens = await _setup_accounts(http, urls[0], _names(args), args.rooms)
    clients = _clients(args, urls, rooms, tokens)
    sending = asyncio.Event()
    sending.set()
    _say(
        f"== Traffic: {args.clients} senders at {args.rate:g}/s, "
        f"{args.readers * args.rooms} readers, {args.rooms} rooms, {args.duration:g} s =="
    )
    clock = Clock()
    victim = group[0 if args.kill == "a" else 1]
    tasks = [asyncio.create_task(client.run(http, sending)) for client in clients]
    chaos = asyncio.create_task(_chaos(args, clock, victim, redis))
    try:
        await asyncio.sleep(args.duration)
        failed = await chaos
        sending.clear()
        clock.say("traffic stops; settling")
        failed += await _revive(group, clock)
        survivor = next((instance for instance in group if instance.running), None)
        if survivor is None:
            raise RuntimeError("no instance is running to read the history from")
        waited = await _settle(http, survivor.url, owner, clients, args.settle)
        clock.say(f"settled after {waited:.1f} s")
        history = {room: await read_history(http, survivor.url, owner, room) for room in rooms}
        return audit(clients, history, clock, args.verbose), failed
    finally:
        chaos.cancel()
        await asyncio.gather(*(client.stop() for client in clients))
        for task in [*tasks, chaos]:
            task.cancel()
        await asyncio.gather(*tasks, chaos, return_exceptions=True)


async def _scenario(args: argparse.Namespace, logs: Path) -> int:
    async with contextlib.AsyncExitStack() as stack:
        postgres = PostgresServer()
        stack.callback(postgres.destroy)
        await asyncio.to_thread(postgres.start)
        await asyncio.to_thread(migrate.upgrade, postgres.url)
        redis = RedisServer()
        stack.callback(redis.destroy)
        await asyncio.to_thread(redis.start)
        group = Instances(instance_env(postgres.url, redis.url, var_dir=logs), logs)
        stack.push_async_callback(group.close)
        await group.add(2)
        _say("== Setup ==")
        _say(
            f"PostgreSQL :{postgres.port}, Redis :{redis.port}, instances "
            + ", ".join(f"{i.name} :{i.port}" for i in group)
            + f"; logs in {logs}; --seed {args.seed}"
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        result, failed = await _traffic(args, group, redis, http)
        result.report(_say, [instance.log for instance in group])
        if failed:
            _say(f"{failed} chaos event(s) failed; see above")
        return 1 if failed or not result.clean else 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="roomcast-chaos-"))
    logs.mkdir(parents=True, exist_ok=True)
    code = 2
    try:
        code = asyncio.run(_run(args, logs))
    except KeyboardInterrupt:
        _say("interrupted; every process was stopped")
        code = 130
    except asyncio.CancelledError:  # SIGTERM: see _run
        _say("terminated; every process was stopped")
        code = 143
    finally:
        if args.logs is None and code == 0:
            shutil.rmtree(logs, ignore_errors=True)
        elif code != 0:
            _say(f"instance logs kept in {logs}")
    sys.exit(code)


async def _run(args: argparse.Namespace, logs: Path) -> int:
    """The scenario, cancelled (and cleaned up) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await _scenario(args, logs)


if __name__ == "__main__":
    main()
