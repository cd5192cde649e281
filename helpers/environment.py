"""What the code runs on: Colab or not, backend, devices, and the precision to train in."""

import ctypes
import os
import platform
import sys
from pathlib import Path

M_MMAP_THRESHOLD = -3  # mallopt's parameter number for it, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's starting value, which fix_mmap_threshold keeps
KEEP_GLIBC_MALLOC = "HELPERS_MALLOC"  # set to "glibc" to leave glibc's malloc as it is


def load_keras() -> None:
    """Load Keras (on TensorFlow unless KERAS_BACKEND says otherwise) with oneDNN's CPU kernels
    on, malloc's mmap threshold fixed (fix_mmap_threshold) and TensorFlow's C++ start-up
    chatter (CUDA probing, oneDNN notices) silenced; call it before anything imports keras or
    tensorflow.

    TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI or newer; on a 2-core
    AMD EPYC with AVX2 only, asking for it trained AlexNet 1.49x as fast (benchmarks.step_time).
    """
    fix_mmap_threshold()  # before TensorFlow starts its threads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # those lines are written to file descriptor 2 directly, not sys.stderr
    try:
        import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    if keras.backend.backend() == "tensorflow":  # and its Python-side notices (retracing)
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")


def fix_mmap_threshold() -> bool:
    """Keep glibc's malloc handing every block of 128 KiB or more (a photo, a batch, an
    activation) a mapping of its own, returned to the system when freed; True if it did.

    By default glibc raises that threshold to each large block freed (up to 32 MB), and from
    then on such blocks come from its arenas, which keep what was freed: the reference run
    grew from epoch to epoch to 10.1 GB, and peaked at 4.90 GB with the threshold fixed
    (README Performance; benchmarks.memory --epochs N, --malloc glibc for the default). Left
    alone off glibc, when the user set MALLOC_MMAP_THRESHOLD_ themselves, or HELPERS_MALLOC=glibc.
    """
    if (platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or os.environ.get(KEEP_GLIBC_MALLOC) == "glibc"):
        return False
    return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


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


def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(wanted: str = "auto") -> str:
    """`wanted`, or for "auto": mixed_float16 on a GPU, mixed_bfloat16 on a CPU that supports
    it, float32 otherwise."""
    if wanted != "auto":
        return wanted
    if gpus():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def device_report() -> dict:
    """Backend, versions, devices and precision, for printing and for run metadata."""
    import keras

    report = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "gpus": gpus(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_bf16": cpu_has_bf16(),
        "precision": choose_precision(),
        "colab": is_colab(),
    }
    if report["keras_backend"] == "tensorflow":
        import tensorflow as tf

        report["tensorflow"] = tf.__version__
        report["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"  # read at import
    return report


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for telling timings apart: the
    same code runs several times faster on a CPU with AVX-512 BF16."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware(report: dict) -> str:
    """One line naming what trained: the GPUs, or the CPU and its core count."""
    if report["gpus"]:
        return f"{len(report['gpus'])} GPU(s): " + ", ".join(report["gpus"])
    bf16 = ", bf16" if report["cpu_bf16"] else ""
    return f"CPU only ({report['cpu']}, {report['cpu_cores']} cores{bf16})"


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 checks without sending anything); used to tell a
    stale lock or cache of a dead run from one in use."""
    if os.name == "nt":  # there os.kill(pid, 0) would interrupt the process: assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True
