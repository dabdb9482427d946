"""Console-script shim for the command whose module only runs as `python -m` (its __main__
block reads sys.argv itself)."""
import sys


def probe_report():
    """hnclip-probe-report RESULTS.json: the probe's markdown report."""
    from train.probe.report import main
    usage = "usage: hnclip-probe-report RESULTS.json"
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(f"{usage}\n\nWrite the probe's markdown report from its results.json (report.md beside it).")
        return
    if len(sys.argv) != 2:
        sys.exit(usage)
    main(sys.argv[1])

