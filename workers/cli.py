"""``durabot``: dev | worker | slack | discord | run | approve | deny | status | deploy | audit | usage |
profiles.

Configuration is read once here (environment and ``.env``) and passed down. A configuration error
stops start-up with one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from agent_core.errors import DurabotError, UserError

if TYPE_CHECKING:  # loaded in main: ``durabot audit`` reads the database URL alone
    from .settings import Settings

log = logging.getLogger("durabot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="durabot", description="Chat-platform bot backed by durable AI agents.")
    sub = p.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="embedded Temporal dev server, a worker and a terminal chat")
    dev.add_argument("--data-dir", default=".durabot", help="where the dev server keeps its database")
    dev.add_argument("--no-chat", action="store_true", help="run the servers and worker without the terminal chat")
    sub.add_parser("worker", help="run an agent worker (scale by running several)")
    run = sub.add_parser("run", help="run one task in autonomous mode and print the answer")
    run.add_argument("task", help="what the agent should do")
    run.add_argument("--conversation", help="conversation id (default: a new one)")
    run.add_argument("--no-local-worker", action="store_true", help="let separate workers run it")
    for verb in ("approve", "deny"):
        d = sub.add_parser(verb, help=f"{verb} a pending tool call")
        d.add_argument("conversation")
        d.add_argument("approval", help="approval id, as printed (for example a5f3c91e07b2d)")
        d.add_argument("--by", default="cli")
    st = sub.add_parser("status", help="this build's id, its worker deployment, and a conversation's build")
    st.add_argument("conversation", nargs="?", help="a conversation id: its state and the build it runs on")
    dep = sub.add_parser("deploy", help="worker deployment versions: status, promote a build")
    dep_sub = dep.add_subparsers(dest="action", required=True)
    dep_sub.add_parser("status", help="the current and ramping builds, and each build's drainage")
    pro = dep_sub.add_parser("promote", help="make a build current (or ramp a share of conversations to it)")
    pro.add_argument("build_id", help="the DURABOT_BUILD_ID of workers already running")
    pro.add_argument("--ramp", type=float, metavar="PCT", help="send this percentage of new conversations to it")
    from .audit_cli import add_arguments as audit_arguments

    audit_arguments(sub.add_parser("audit", help="the audit trail: approvals, allowances, revocations, cancels"))
    from .usage_cli import add_arguments as usage_arguments

    usage_arguments(sub.add_parser("usage", help="tokens and turns of users and channels (from Redis)"))
    profiles = sub.add_parser("profiles", help="per-channel profiles").add_subparsers(dest="profiles_command",
                                                                                        required=True)
    profiles.add_parser("check", help="check a profiles file against the configured tools").add_argument("file")
    for name in ("slack", "discord"):
        a = sub.add_parser(name, help=f"run the {name.title()} adapter")
        a.add_argument("--no-local-worker", action="store_true",
                       help="do not run an embedded worker (use separate 'durabot worker' processes)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "audit":  # the database alone: no Temporal, model or adapter configuration
            from .audit_cli import database_url, export

            export(database_url(), args)
            return
        import asyncio

        from .settings import Settings

        settings = Settings.load()
        from .observability import configure_logging

        configure_logging(settings.log_level, json=settings.log_json, secrets=_secrets(settings))
        logging.getLogger("temporalio").setLevel(logging.WARNING)
        if getattr(args, "no_local_worker", False):
            settings.local_worker = False
        runner: Callable[[Settings, Any], Awaitable[None]] = {
            "dev": _dev, "worker": _worker, "slack": _slack, "discord": _discord, "run": _run,
            "approve": _decide, "deny": _decide, "status": _status, "deploy": _deploy,
            "approve": _decide, "deny": _decide, "profiles": _profiles_check,
            "usage": _usage,
        }[args.command]
        asyncio.run(_until_signal(runner(settings, args)))
    except UserError as exc:
        print(f"durabot: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except DurabotError as exc:
        print(f"durabot: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        # A Temporal RPC error sits in a reference cycle with its traceback; freed during interpreter
        # shutdown it aborts the process (SIGABRT in the client's native thread). Free it now.
        gc.collect()


def _secrets(settings: Settings) -> list[str]:
    """The configured secrets plus the passwords inside configured URLs: the log filter masks URL
    credentials by their shape, and these literals catch a password quoted without its URL."""
    from agent_core.redaction import url_passwords

    mcp_urls = [part.partition("=")[2].strip() for part in settings.mcp_servers.split(";")]
    return [*settings.secrets(),
            *url_passwords(settings.redis_url, settings.openai_base_url, settings.temporal_ui_url, *mcp_urls)]


async def _until_signal(coro: Awaitable[None]) -> None:
    """Run until done or SIGTERM/SIGINT; then cancel, so every part shuts down cleanly."""
    import asyncio

    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _worker(settings: Settings, args: Any) -> None:
    from .worker_process import run_worker

    await run_worker(settings)


async def _slack(settings: Settings, args: Any) -> None:
    from .adapters import run_adapter

    await run_adapter(settings, "slack")


async def _discord(settings: Settings, args: Any) -> None:
    from .adapters import run_adapter

    await run_adapter(settings, "discord")


async def _run(settings: Settings, args: Any) -> None:
    from .run_task import run_task

    await run_task(settings, args.task, conversation_id=args.conversation)


async def _decide(settings: Settings, args: Any) -> None:
    from .app import build_agent

    agent = build_agent(settings, local_worker=False)
    await agent.start()
    # Whoever runs this has Temporal access, so could signal the workflow anyway: an operator decides as admin.
    info = await agent.decide(args.conversation, args.approval, args.command == "approve", by=args.by, admin=True)
    print(f"{info.tool}: {info.status} by {info.decided_by}")


async def _status(settings: Settings, args: Any) -> None:
    from .deploy_cli import run_status

    await run_status(settings, args.conversation)


async def _deploy(settings: Settings, args: Any) -> None:
    from .deploy_cli import run_deploy

    await run_deploy(settings, args.action, getattr(args, "build_id", None), getattr(args, "ramp", None))
async def _usage(settings: Settings, args: Any) -> None:
    from .usage_cli import show

    print(await show(settings.redis_url, args, settings))


async def _profiles_check(settings: Settings, args: Any) -> None:
    from .app import check_profiles_file

    print(check_profiles_file(settings, args.file))


async def _dev(settings: Settings, args: Any) -> None:
    from .dev import run_dev

    await run_dev(settings, data_dir=args.data_dir, chat=not args.no_chat)


if __name__ == "__main__":
    main()
