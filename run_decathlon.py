"""The whole Decathlon benchmark end to end.

Not built yet: training and the leaderboard arrive with the models/engine and the
end-to-end issues. For now this checks the prepared data and says what comes next.
"""
import argparse
import sys

from decathlon.manifest import ManifestError, read_manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data/synthetic", help="prepared shard folder")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.data)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kind = "SYNTHETIC" if manifest["synthetic"] else "real"
    print(f"{args.data}: {kind} data, domains: {', '.join(manifest['domains'])}")
    print("Training, scoring and tables are not built yet (see the open issues).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
