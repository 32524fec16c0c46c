"""Run several `semtalk fit` commands one after another in one distributed job (one process per rank).

Started by torchrun (`torchrun --standalone --nproc-per-node 2 tests/scripts/ddp_stages.py JOBS.json`), so
Lightning finds its ranks in torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, ...) and the fits share one
process group. JOBS.json holds a list of argument lists, each as `semtalk fit ...` takes them.
"""

import json
import sys
from pathlib import Path

from semtalk.lightning_cli import run_cli


def main(jobs_file: str) -> None:
    for argv in json.loads(Path(jobs_file).read_text()):
        run_cli(list(argv))


if __name__ == "__main__":
    main(sys.argv[1])
