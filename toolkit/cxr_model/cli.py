"""cxr-model: make and check cxr-gateway model packages (research use, not for diagnostic use).

  cxr-model train    --data DIR --labels LABELS.csv --out PACKAGE_DIR [--size 224] [--epochs N] [--init PACKAGE_OR_CKPT] [--device cpu|cuda] ...
  cxr-model validate --package PACKAGE_DIR --data DIR --labels LABELS.csv --out REPORT_DIR [--write-thresholds youden|sensitivity=0.9]
  cxr-model quantize --package PACKAGE_DIR --data DIR --labels LABELS.csv [--int8-images 64] [--int8-float NAME...] [--int8-blocks uint8|float] [--int8-weight-bits 7|8]
  cxr-model synth    --out DIR [--patients N] [--task chest|covid3]   (generated test data)
"""
import argparse
import sys

from . import codes, labels


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="cxr-model", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    from . import quantize_cmd, train, validate
    train.add_arguments(sub.add_parser("train", help="train a package"))
    validate.add_arguments(sub.add_parser("validate", help="score a labelled set with the gateway and report"))
    quantize_cmd.add_arguments(sub.add_parser("quantize", help="add the INT8 variant to a trained package"))
    sub.add_parser("synth", help="generate labelled synthetic radiographs", add_help=False)
    if argv and argv[0] == "synth":
        from . import synth
        return synth.main(argv[1:])
    a = ap.parse_args(argv)
    try:
        if a.command == "train":
            train.run(a)
        elif a.command == "quantize":
            quantize_cmd.run(a)
        else:
            validate.run(a)
    except (labels.LabelError, codes.CodeError) as e:
        print("cxr-model: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
