"""Console-script shims for the two commands whose modules only run as `python -m` (their
__main__ blocks read sys.argv themselves)."""
import runpy
import sys


def probe_report():
    """hnclip-probe-report RESULTS.json: the probe's markdown report."""
    from train.probe.report import main
    if len(sys.argv) != 2:
        sys.exit("usage: hnclip-probe-report RESULTS.json")
    main(sys.argv[1])


def tiny_diffusion():
    """hnclip-tiny-diffusion --out DIR: the tiny diffusion pipelines the engine tests use."""
    runpy.run_module("hn_data.tiny_diffusion", run_name="__main__", alter_sys=True)
