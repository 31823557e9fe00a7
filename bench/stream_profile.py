"""Where a worker's time goes: py-spy's collapsed stacks, summarised as shares per function.

    python bench/stream_profile.py PROFILE.txt [--top 25]

The file is `py-spy record --format raw` output (one line per distinct stack, frames joined by
";", then the number of samples). A function's *inclusive* share counts the samples whose stack
contains it (once per stack, however deep the recursion); its *own* share counts the samples
in which it was the innermost frame.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    """`function (path/to/file.py:12)` → `function (file.py)`: one name per function."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['function']} ({Path(match['file']).name})"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, and samples per function: inclusive and own."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [_name(frame) for frame in match["stack"].split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, inclusive, own


# Where a sample goes, by the first of these whose marker is in its stack (so a send made while
# routing counts as producing, and everything a clock tick does counts as the tick).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("judging stage (decode envelopes, validate, judge, table writes)", ("_judge_envelope", "_judging",
                                                                         "_ensure_loaded")),
    ("clock tick (flush the live network, publish alerts and snapshots)", ("StreamWorker._tick",)),
    ("producing (Faust Topic.send, aiokafka producer)", ("Topic.send", "Topic.publish_message", "Producer.send",
                                                          "Sender.", "MessageAccumulator", "SendProduceReqHandler",
                                                          "Channel._send_now")),
    ("intake routing (peek, envelopes; monitor code)", ("_route", "_forward", "peek (", "_dead_letter")),
    ("Faust stream and agent machinery (take_events, acks, channel queues)",
     ("Stream.", "Agent._execute_actor", "Conductor.", "Channel.", "Event.ack", "Stream._c_aiter")),
    ("Faust consumer (fetch, decode, dispatch to agents, commit)", ("Consumer.", "Fetcher._fetcher",
                                                                   "Schema.compile")),
    ("aiokafka's consumer thread and client", ("WorkerThread.run", "ServiceThread", "AIOKafkaClient",
                                               "AIOKafkaConnection")),
    ("web server (/metrics)", ("aiohttp", "web_protocol", "generate_latest")),
)


def categories(path: Path) -> tuple[int, list[tuple[str, int]]]:
    """Total samples, and samples per category of CATEGORIES (the rest: the event loop itself)."""
    total = 0
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count, stack = int(match["count"]), match["stack"]
        total += count
        for name, markers in CATEGORIES:
            if any(marker in stack for marker in markers):
                counts[name] += count
                break
        else:
            counts["event loop, scheduling, other"] += count
    order = [name for name, _ in CATEGORIES] + ["event loop, scheduling, other"]
    return total, [(name, counts[name]) for name in order]


# Frames every sample of a thread passes through (start-up, the event loop, thread bootstrap):
# left out of the function list, where they would only crowd out the informative ones.
SCAFFOLDING = ("(<frozen runpy>)", "(core.py)", "(__main__.py)", "(cli.py)", "run_worker (", "execute_from_commandline",
               "BaseEventLoop.run_", "BaseEventLoop._run_once", "Handle._run", "Thread._bootstrap",
               "ServiceThread._start_thread", "WorkerThread.run", "Service._execute_task", "App._task.<locals>")


def report(path: Path, top: int = 25, *, indent: str = "  ") -> list[str]:
    """Lines for a person: the shares by stage, the functions with the largest inclusive shares
    (scaffolding left out), then the largest own shares."""
    total, inclusive, own = summarise(path)
    if not total:
        return [f"{indent}(no samples in {path})"]
    _, shares = categories(path)
    lines = [f"{indent}{total:,} samples; by stage (each sample counted once, in the first stage that matches):"]
    lines += [f"{indent}  {n / total:6.1%}  {name}" for name, n in shares]
    lines.append(f"{indent}inclusive share of the largest functions (the function and what it calls):")
    shown = [(name, n) for name, n in inclusive.most_common()
             if n / total >= 0.02 and not any(marker in name for marker in SCAFFOLDING)][:top]
    lines += [f"{indent}  {n / total:6.1%}  {name}" for name, n in shown]
    lines.append(f"{indent}own share (innermost frame):")
    lines += [f"{indent}  {n / total:6.1%}  {name}" for name, n in own.most_common(top // 2)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    print("\n".join(report(options.profile, options.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
