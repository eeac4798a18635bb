"""`python -m transferability.bench [--quick] [--only <sections, comma-separated>]`: every section by default."""
import argparse
import importlib

SECTIONS = ("ce", "heads", "estimators", "openimages", "folder", "stacked")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the reported figures")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    args = p.parse_args()
    for name in args.only.split(","):
        if name not in SECTIONS:
            p.error(f"unknown section {name!r} (valid: {', '.join(SECTIONS)})")
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"transferability.bench.{name}").main(quick=args.quick)


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    main()
