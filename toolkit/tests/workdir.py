"""The one scratch-directory rule of the toolkit tests: a trained package and its work files reach 630 MB, so every
test removes its directory when it ends, passed or failed (leaked ones once filled the CI machine's disk)."""
import shutil
import tempfile


def workdir(test):
    """A fresh directory that unittest removes after `test`, whatever its outcome."""
    d = tempfile.mkdtemp(prefix="cxr-toolkit-test-")
    test.addCleanup(shutil.rmtree, d, ignore_errors=True)
    return d
