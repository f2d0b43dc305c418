"""Roomcast's one entry point: serve (default), migrate, createsuperuser, billing-sync."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import re
import sys

from server.config import ConfigError, Settings, load_settings
from server.logs import configure as configure_logging

logger = logging.getLogger("roomcast")


async def _settle_heap(_app: object) -> None:
    """Keep start-up objects out of the collector's way: full collections over a heap of
    long-lived modules and tables stall every socket for 100 ms and more under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def _announce(text: str) -> None:
    """What `run_app` prints once it listens ("======== Running on URL ========"), as one
    log line: a JSON object like every other when LOG_FORMAT=json."""
    urls = re.findall(r"https?://[^\s,]+", text)
    if urls:
        logger.info(
            "Roomcast serving on %s (Ctrl+C stops it)", ", ".join(urls), extra={"urls": urls}
        )
    else:
        logger.info("%s", " ".join(text.split()))


def _serve(settings: Settings) -> int:
    import uvloop
    from aiohttp import web

    from server.app import create_app
    from server.logs import AccessLogger

    app = create_app(settings)
    app.on_startup.append(_settle_heap)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        backlog=settings.listen_backlog,
        print=_announce,
        access_log_class=AccessLogger,
        loop=uvloop.new_event_loop(),
        handle_signals=True,
    )
    return 0


def _migrate(settings: Settings) -> int:
    from storage import migrate

    migrate.upgrade(settings.database_url)
    logger.info("database is at the newest revision")
    return 0


async def _create_superuser(settings: Settings, email: str, name: str, password: str) -> None:
    from server.auth.passwords import Passwords
    from storage.db import Database
    from storage.users import create_user

    database = Database(settings.database_url, pool_size=1)
    try:
        password_hash = await Passwords(settings.argon2).hash(password)
        async with database.sessions.begin() as session:
            user = await create_user(
                session, email=email, name=name, password_hash=password_hash, role="admin"
            )
        print(f"created admin {user.email} ({user.id})")  # noqa: T201
    finally:
        await database.close()


def _superuser(settings: Settings, args: argparse.Namespace) -> int:
    email = args.email or input("Email: ").strip()
    name = args.name or input("Name: ").strip() or email.split("@")[0]
    password = args.password or getpass.getpass("Password (at least 10 characters): ")
    from errors import RoomcastError
    from server.auth.policy import check_new_password

    try:
        check_new_password(password)
    except ValueError as exc:
        print(f"password: {exc}", file=sys.stderr)  # noqa: T201
        return 2

    try:
        asyncio.run(_create_superuser(settings, email, name, password))
    except RoomcastError as exc:
        print(f"error: {exc.message}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _billing_sync(settings: Settings) -> int:
    if not settings.stripe_secret_key:
        print("billing-sync needs STRIPE_SECRET_KEY", file=sys.stderr)  # noqa: T201
        return 2
    from server.billing import sync

    report = asyncio.run(sync.run(settings))
    print(  # noqa: T201
        f"billing-sync: teams checked {report.teams}, repaired {report.repaired}, "
        f"failed {report.failed}"
    )
    return 1 if report.failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Roomcast chat server. Configuration comes from environment variables "
        "(see README.md): DATABASE_URL, REDIS_URL, SECRET_KEY, HOST, PORT, ENV, ...",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP and websockets (the default)")
    commands.add_parser("migrate", help="apply database migrations up to the newest")
    superuser = commands.add_parser("createsuperuser", help="create an admin account")
    superuser.add_argument("--email")
    superuser.add_argument("--name")
    superuser.add_argument("--password", help="prefer the prompt or ROOMCAST_PASSWORD")
    commands.add_parser(
        "billing-sync", help="re-read every team's subscription from Stripe, repair local state"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "billing-sync":
        return _billing_sync(settings)
    if args.command == "createsuperuser":
        import os

        args.password = args.password or os.environ.get("ROOMCAST_PASSWORD")
        return _superuser(settings, args)
    return _serve(settings)


if __name__ == "__main__":
    sys.exit(main())
