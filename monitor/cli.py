"""The `monitor` command line."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from monitor import __version__
from monitor import schemas as message_schemas
from monitor.config_files import ConfigFileError, load_policy, load_registry
from monitor.settings import MonitorSettings

log = logging.getLogger("monitor")


class ConfigRefused(click.ClickException):
    exit_code = 2


class Instant(click.ParamType):
    """An RFC 3339 timestamp with an offset, or a date (00:00:00Z of that day)."""

    name = "instant"

    def __init__(self, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                moment = datetime.combine(day, clock_time(0), tzinfo=UTC)
                # a bare date as the end of a range means the whole of that day
                return moment + timedelta(days=1, microseconds=-1) if self.end_of_day else moment
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is neither an RFC 3339 timestamp nor a date (YYYY-MM-DD)", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{text!r} has no UTC offset; write it like 2026-03-01T10:00:00Z", param, ctx)
        return moment


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="monitor")
@click.option("-v", "--verbose", count=True, help="More log detail (-vv for debug).")
def main(verbose: int) -> None:
    """After-sales obligation monitor for electric-vehicle exports.

    Watches exporters' overseas service networks (service tickets, parts stock,
    outlet status) against the export-licence obligations: 48-hour maintenance
    response, parts inventory rate, emergency-rescue coverage of major markets,
    network size and authorisation. Figures and alerts follow OBLIGATIONS.md.
    """
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose + 1, 2), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _progress_reporter(console: Console) -> Any:
    """Progress on stderr: a live bar on a terminal, a line every few seconds otherwise."""
    started = time.monotonic()
    last = [0.0, -1.0]  # when it last reported, and how far it had got

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == last[1] or (done < total and now - last[0] < (0.5 if console.is_terminal else 5.0)):
            return
        last[0], last[1] = now, done
        share = done / total if total else 1.0
        rate = done / max(now - started, 1e-9) / 1e6
        text = f"read {done / 1e6:,.1f} of {total / 1e6:,.1f} MB ({share:.0%}, {rate:,.1f} MB/s)"
        if console.is_terminal:
            console.print(text, end="\r", highlight=False)
        else:
            log.warning(text) if total > 50e6 else log.info(text)

    return report


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exporter registry (YAML or JSON). Default: $MONITOR_REGISTRY, else the bundled example.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy file (YAML or JSON). Default: $MONITOR_POLICY, else the built-in default policy.")
@click.option("--as-of", "as_of", type=Instant(),
              help="'Now' for the judgement. Default: the latest occurred_at in the input. "
                   "Events after it are ignored.")
@click.option("--from", "window_from", type=Instant(), help="Count ticket cycles starting at or after this.")
@click.option("--to", "window_to", type=Instant(end_of_day=True),
              help="Count ticket cycles starting at or before this (a date: the whole day).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json: the document of CONTRACT.md; table: for a person.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes that judge the input, split by exporter. Default: one per core for "
                   "inputs over 16 MB. The result is the same for any number.")
def evaluate(files: tuple[Path, ...], registry_path: Path | None, policy_path: Path | None,
             as_of: datetime | None, window_from: datetime | None, window_to: datetime | None,
             output_format: str, processes: int | None) -> None:
    """Compute every figure and alert from JSON-lines event files, no broker needed.

    Each line is one input event with an extra "topic" field: service-tickets,
    parts-stock, outlet-status or registry. Bad lines are listed under "rejected"
    with file:line and the reason; everything else still counts.
    """
    from monitor.batch.evaluate import evaluate_files

    settings = MonitorSettings()
    try:
        registry = load_registry(registry_path or settings.registry)
        policy_file = policy_path or settings.policy
        policy = load_policy(policy_file) if policy_file else None
    except ConfigFileError as exc:
        raise ConfigRefused(str(exc)) from None
    err = Console(stderr=True)
    started = time.perf_counter()
    doc = evaluate_files(list(files), registry=registry, policy=policy, as_of=as_of, window_from=window_from,
                         window_to=window_to, progress=_progress_reporter(err), processes=processes)
    log.info("evaluated in %.2f s", time.perf_counter() - started)
    if output_format == "json":
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        from monitor.batch.table import render

        render(doc, Console())


@main.command()
@click.option("--check", is_flag=True, help="Fail if the files differ from the models; write nothing.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"),
              show_default=True, help="Where the schema files live.")
def schemas(check: bool, directory: Path) -> None:
    """Write the JSON Schemas of every message into schemas/ (or check them)."""
    if check:
        problems = message_schemas.drift(directory)
        if problems:
            raise click.ClickException(
                "schemas drifted from the models (run `monitor schemas`):\n  " + "\n  ".join(problems))
        click.echo(f"{len(message_schemas.MESSAGES)} schemas in {directory} match the models")
        return
    for name in message_schemas.write(directory):
        click.echo(f"wrote {directory / name}")


if __name__ == "__main__":
    main()
