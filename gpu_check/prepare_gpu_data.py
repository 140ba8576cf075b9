"""Prepare the folder that travels with this checkout to a GPU machine: verified datasets and the commit.

    python gpu_check/prepare_gpu_data.py             # all five datasets from $SARBENCH_DATA -> .gpu-data/
    python gpu_check/prepare_gpu_data.py --datasets ml-1m video --data-dir DIR --dest DEST

``gpu_check/gpu_check.sh`` runs on a machine that receives the working tree and nothing else: no ``.git``,
no data folder beside the checkout, no network. This command copies what it needs into ``.gpu-data/``
inside the checkout (ignored by git, never committed; send it along with the checkout):

    <file>.gz   each dataset's processed file, checked against the registry's sha256 first, gzipped
                (the suite reads ``*.gz`` as it is; about 5 MB for all five instead of 20)
    COMMIT      the commit of this checkout; the script exports it as SARBENCH_COMMIT, so records
                made there name the code they ran
    MANIFEST    dataset, file, sha256 of the content, size, and when this was prepared

A checkout whose tracked files differ from its commit is refused (records would name a commit that
is not the code that ran) unless ``--allow-dirty`` is given; then MANIFEST says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's registry, whatever copy of sarbench is installed

from sarbench.data import DATASETS, data_dir, file_sha256, find_dataset_file  # noqa: E402
from sarbench.data.readers import is_gzip  # noqa: E402

DEFAULT_DEST = ROOT / ".gpu-data"


def git(*args: str) -> str | None:
    """Output of a git command in this checkout, or None where git or the repository is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def copy_dataset(name: str, source_dir: Path, dest: Path) -> str:
    """Verify one dataset's file in ``source_dir`` and write it gzipped into ``dest``; its MANIFEST line."""
    info = DATASETS[name]
    found = find_dataset_file(name, source_dir)
    if found is None or found[1] != "processed":
        raise SystemExit(f"prepare_gpu_data: {info.filename} (dataset {name!r}) is not in {source_dir}; "
                         f"get it with `sarbench data fetch {name} --data-dir {source_dir}`")
    path = found[0]
    sha = file_sha256(path)
    if sha != info.sha256:
        raise SystemExit(f"prepare_gpu_data: {path}: sha256 {sha} differs from the registry's {info.sha256} "
                         f"for dataset {name!r}; refusing to send a file that is not {info.filename}")
    target = dest / (info.filename + ".gz")
    tmp = target.with_name(target.name + ".tmp")
    if is_gzip(path):
        shutil.copyfile(path, tmp)
    else:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(target)
    return f"{name}\t{target.name}\t{sha}\t{target.stat().st_size}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS), metavar="NAME",
                    help=f"datasets to copy (default: all of {', '.join(DATASETS)})")
    ap.add_argument("--data-dir", default=None, help="where the datasets are (default: $SARBENCH_DATA)")
    ap.add_argument("--dest", default=str(DEFAULT_DEST), help="folder to write (default: .gpu-data in this checkout)")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="prepare even when tracked files differ from the commit (default: refuse)")
    args = ap.parse_args(argv)

    source = data_dir(args.data_dir)
    if source is None or not source.is_dir():
        print(f"prepare_gpu_data: no data folder ({'--data-dir ' + args.data_dir if args.data_dir else '$SARBENCH_DATA'} "
              f"is {'unset' if source is None else 'missing: ' + str(source)})", file=sys.stderr)
        return 1
    commit = git("rev-parse", "HEAD")
    if not commit:
        print(f"prepare_gpu_data: {ROOT} is not a git checkout; the commit cannot be recorded", file=sys.stderr)
        return 1
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    if dirty and not args.allow_dirty:
        print("prepare_gpu_data: tracked files differ from the commit; commit first (records made on the GPU "
              "name the commit), or pass --allow-dirty", file=sys.stderr)
        return 1
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.gz"):
        stale.unlink()
    lines = [copy_dataset(name, source, dest) for name in args.datasets]
    (dest / "COMMIT").write_text(commit + "\n")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [f"# prepared {stamp} from commit {commit}{' (tracked files modified)' if dirty else ''}",
              "# dataset\tfile\tsha256 of the content\tbytes"]
    (dest / "MANIFEST").write_text("\n".join(header + lines) + "\n")
    size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    print(f"prepared {dest}: {', '.join(args.datasets)} ({size / 2**20:.1f} MiB), commit {commit[:12]}"
          f"{' (dirty)' if dirty else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
