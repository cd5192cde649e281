"""What the code runs on: Colab or not, backend, devices, and the precision to train in."""

import ctypes
import os
import platform
import re
import sys
from pathlib import Path

KEEP_GLIBC_MALLOC = "HELPERS_MALLOC"  # "glibc": leave glibc's malloc as it is, untuned, untrimmed


def load_keras() -> None:
    """Import Keras before anything else does: malloc fixed, oneDNN on, TensorFlow's chatter off."""
    fix_mmap_threshold()  # before TensorFlow starts its threads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # by default on only on the newest CPUs
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # TensorFlow's C++ start-up chatter goes to descriptor 2, not sys.stderr
    try:
        import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    if keras.backend.backend() == "tensorflow":  # and its Python-side notices (retracing)
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")


def fix_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at 128 KiB, so big freed blocks go back at once."""
    if (platform.libc_ver()[0] == "glibc" and "MALLOC_MMAP_THRESHOLD_" not in os.environ
            and os.environ.get(KEEP_GLIBC_MALLOC) != "glibc"):
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # -3: M_MMAP_THRESHOLD


def release_memory() -> bool:
    """glibc's malloc_trim(0): hand back the free memory malloc keeps in its arenas; True if any."""
    if platform.libc_ver()[0] != "glibc" or os.environ.get(KEEP_GLIBC_MALLOC) == "glibc":
        return False
    return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))


def is_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def gpus() -> list[str]:
    """Names of the GPUs the Keras backend can use (empty on a CPU-only machine)."""
    import keras
    if keras.backend.backend() == "jax":
        import jax
        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf
    return [tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")]


def _cpuinfo() -> str:
    """/proc/cpuinfo's text (Linux), empty where there is none."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool(re.search("avx512_bf16|amx_bf16", _cpuinfo()))


def cpu_model() -> str:
    """The CPU's model name, to tell timings apart: the same code runs far faster on some CPUs."""
    found = re.search(r"^model name[^:]*:(.*)$", _cpuinfo(), re.MULTILINE)
    return found[1].strip() if found else (platform.processor() or platform.machine())


def choose_precision(wanted: str = "auto") -> str:
    """`wanted`, or for "auto": mixed_float16 on a GPU, mixed_bfloat16 on a bf16 CPU, or float32."""
    if wanted != "auto":
        return wanted
    return "mixed_float16" if gpus() else ("mixed_bfloat16" if cpu_has_bf16() else "float32")


def device_report() -> dict:
    """Backend, versions, devices and precision, for printing and for run metadata."""
    import keras
    report = {"python": platform.python_version(), "keras": keras.__version__,
              "keras_backend": keras.backend.backend(), "gpus": gpus(), "cpu": cpu_model(),
              "cpu_cores": os.cpu_count(), "cpu_bf16": cpu_has_bf16(),
              "precision": choose_precision(), "colab": is_colab()}
    if report["keras_backend"] == "tensorflow":
        import tensorflow as tf
        report["tensorflow"] = tf.__version__
        report["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"  # read at import
    return report


def describe_hardware(report: dict) -> str:
    """One line naming what trained: the GPUs, or the CPU and its core count."""
    if report["gpus"]:
        return f"{len(report['gpus'])} GPU(s): " + ", ".join(report["gpus"])
    bf16 = ", bf16" if report["cpu_bf16"] else ""
    return f"CPU only ({report['cpu']}, {report['cpu_cores']} cores{bf16})"


def peak_memory_gb() -> float | None:
    """This process's peak resident memory in GB; None where the system does not say (Windows)."""
    if sys.platform == "win32":  # Windows has no resource module
        return None
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists: tells a dead run's stale lock or cache from one in use."""
    try:
        if os.name != "nt":  # there os.kill(pid, 0) would interrupt the process: assume it lives
            os.kill(pid, 0)  # signal 0: checks, sends nothing
    except (ProcessLookupError, PermissionError) as error:  # PermissionError: another user's
        return isinstance(error, PermissionError)
    return True
