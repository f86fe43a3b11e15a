"""Where the CPU went: a summary of py-spy's raw folded stacks (``concurrency.py --profile``).

    .venv/bin/python bench/profile_summary.py bench/results/profiles/sqlite-n100-web-*.txt

For each file (one process) it prints the share of samples whose innermost frame is in each
function ("self"), and the share of samples that pass through each of the project's own
functions ("total"), the largest first. Idle samples (py-spy's --nonblocking records only
active threads unless --idle) are not in the files.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
OURS = ("agentproj/", "sessions_app/", "approvals_app/")


def frames(stack: str) -> list[tuple[str, str]]:
    found = []
    for frame in stack.split(";"):
        match = FRAME.match(frame.strip())
        if match:
            found.append((match["function"], match["file"]))
    return found


def short(file: str) -> str:
    for marker in ("site-packages/", *OURS):
        if marker in file:
            return (marker if marker in OURS else "") + file.split(marker, 1)[1]
    return Path(file).name


def summarise(path: Path, top: int) -> None:
    own: Counter = Counter()
    ours: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        stack_frames = frames(stack)
        if stack_frames:
            function, file = stack_frames[-1]
            own[f"{function} ({short(file)})"] += samples
        seen = {
            f"{fn} ({short(fl)})"
            for fn, fl in stack_frames
            if fl.startswith(OURS) or any(o in fl for o in OURS)
        }
        for name in seen:
            ours[name] += samples
    print(f"\n== {path.name}: {total} samples")
    print("  self:")
    for name, samples in own.most_common(top):
        print(f"    {100 * samples / total:5.1f} %  {name}")
    print("  through the project's functions:")
    for name, samples in ours.most_common(top):
        print(f"    {100 * samples / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.files:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
