"""Where pydarknet is deployed: servers that fork after loading models (gunicorn
--preload, Celery prefork, multiprocessing's fork), and shared machines (CPU affinity,
cgroup quotas, how idle threads wait). Each case runs in a fresh interpreter with a
time limit, so a hang fails the test instead of the suite."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import pydarknet
from pydarknet import cpus
from pydarknet.runtime import samples

from conftest import assert_same_detections

# What a child of the test prints on its last line, as JSON.
FORK = """
import json, multiprocessing, os, sys
import pydarknet

net = pydarknet.Network(sys.argv[1], sys.argv[2], names=sys.argv[3], precision=sys.argv[5])
image = sys.argv[4]

def found(_=None):
    return [d.to_json() for d in pydarknet.detect(net, image)]

def workers():
    return len(os.listdir("/proc/self/task"))

parent = found()  # the parent has run its parallel regions: their workers are docked
with multiprocessing.get_context("fork").Pool(2) as pool:
    pooled = pool.map_async(found, range(2)).get(timeout=60)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    result = {"found": found(), "threads": pydarknet.get_num_threads(), "workers": workers()}
    os.write(write, json.dumps(result).encode())
    os._exit(0)
os.close(write)
child = json.loads(os.read(read, 1 << 20).decode())
os.waitpid(pid, 0)
print(json.dumps({"parent": parent, "pooled": pooled, "child": child, "threads": pydarknet.get_num_threads()}))
"""


def run_python(code: str, *args, env=None, timeout=120) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def clean_environment(**extra) -> dict:
    """This process's environment without the thread and wait settings a CI pass sets."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYDARKNET_NUM_THREADS", "OMP_NUM_THREADS") + cpus.WAIT_VARIABLES}
    return {**env, **extra}


def test_children_forked_after_a_forward_pass_detect_like_the_parent(official):
    """A fork Pool of 2 and a bare os.fork() child, after the parent loaded and ran a
    network: they do not hang (GNU OpenMP's docked workers are not in a child), find what
    the parent finds and run with the parent's threads, started anew in the child."""
    names = pydarknet.upstream_path("data/coco.names")
    result = run_python(FORK, *official[:2], names, samples.path("dog.jpg"), "float32", env=clean_environment())
    assert_forked_children_detect_like_the_parent(result)


def assert_forked_children_detect_like_the_parent(result):
    assert len(result["parent"]) >= 3
    for found in result["pooled"] + [result["child"]["found"]]:
        assert_same_detections(found, result["parent"])
    assert result["child"]["threads"] == result["threads"]
    if result["threads"] > 1 and pydarknet.build_info()["features"]["openmp"]:
        assert result["child"]["workers"] >= result["threads"]  # its own OpenMP workers


@pytest.mark.skipif(pydarknet.build_info()["features"].get("backend") != "onednn", reason="int8 runs on oneDNN")
def test_children_forked_from_an_int8_network_detect_like_the_parent(official, tmp_path):
    """The same with an int8 network (oneDNN primitives and int8 tensors made before the fork)."""
    images = [samples.path(n) for n in ("eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg")]
    cfg, weights, _ = pydarknet.quantize(*official[:2], images, tmp_path / "int8").written
    names = pydarknet.upstream_path("data/coco.names")
    result = run_python(FORK, cfg, weights, names, samples.path("dog.jpg"), "int8", env=clean_environment())
    assert_forked_children_detect_like_the_parent(result)


def test_a_forked_child_can_use_a_network_another_thread_was_running(official):
    """A fork while another thread is inside predict(): the child's copy of the network's
    lock would be held by a thread that the child does not have; it is made anew."""
    code = """
    import json, os, sys, threading
    import numpy as np
    import pydarknet

    net = pydarknet.Network(sys.argv[1], sys.argv[2])
    x = np.random.default_rng(0).random((1,) + net.input_shape, dtype=np.float32)
    expected = net.predict(x)
    busy = threading.Event()
    stop = False

    def spin():
        while not stop:
            with net._locked():
                busy.set()
                net._forward(x, np.empty((1, net._outputs), np.float32))

    worker = threading.Thread(target=spin)
    worker.start()
    busy.wait()
    pid = os.fork()
    if pid == 0:
        same = float(np.abs(net.predict(x) - expected).max())
        os.write(1, (json.dumps({"difference": same}) + "\\n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    stop = True
    worker.join()
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, official[:2])],
                          capture_output=True, text=True, timeout=120, env=clean_environment())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["difference"] <= 1e-5


def test_the_default_thread_count_follows_the_cpus_this_process_may_use():
    """Pinned to one CPU (as taskset, a container's cpuset or Ray do it), a new process
    runs one thread, not one per core of the host; PYDARKNET_NUM_THREADS and
    OMP_NUM_THREADS still rule."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and two CPUs")
    code = """
    import json, os, sys
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import pydarknet
    print(json.dumps(pydarknet.thread_policy()))
    """
    pinned = run_python(code, env=clean_environment())
    assert (pinned["threads"], pinned["source"], pinned["cpus"]) == (1, "CPU affinity", 1)
    assert pinned["wait"].startswith("bounded spinning")
    assert run_python(code, env=clean_environment(PYDARKNET_NUM_THREADS="3"))["threads"] == 3
    chosen = run_python(code, env=clean_environment(OMP_NUM_THREADS="2", OMP_WAIT_POLICY="passive"))
    assert (chosen["threads"], chosen["source"]) == (2, "OMP_NUM_THREADS")
    assert chosen["wait"] == "yours: OMP_WAIT_POLICY=passive"


def test_the_wait_policy_is_set_for_the_openmp_runtime_only():
    """GOMP_SPINCOUNT is in the environment while the extension loads, then gone: a
    process pydarknet's user starts keeps its own defaults."""
    code = """
    import json, os, subprocess, sys
    import pydarknet
    pydarknet.get_num_threads()
    inherited = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('GOMP_SPINCOUNT'))"],
                               capture_output=True, text=True).stdout.strip()
    print(json.dumps({"here": os.environ.get("GOMP_SPINCOUNT"), "child": inherited,
                      "wait": pydarknet.thread_policy()["wait"]}))
    """
    result = run_python(code, env=clean_environment())
    assert result["here"] is None and result["child"] == "None"
    assert f"{cpus.SPIN_COUNT} spins" in result["wait"]


def cgroup(tmp_path, membership: str, files: dict):
    """A fake /sys/fs/cgroup with ``files`` (path -> text), and /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    (tmp_path / "membership").write_text(membership)
    return root, tmp_path / "membership"


@pytest.mark.parametrize("membership,files,limit", [
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # cgroup v2, no quota
    ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),  # a container's own quota (docker --cpus 1.5)
    ("0::/kubepods/pod1/c1\n", {"kubepods/cpu.max": "400000 100000\n",
                                "kubepods/pod1/c1/cpu.max": "max 100000\n"}, 4.0),  # the tightest on the way up
    ("0::/not/visible/here\n", {"cpu.max": "50000 100000\n"}, 0.5),  # no cgroup namespace: the root counts
    ("4:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
                                     "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
    ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     None),
    ("garbage\n0::/\n", {"cpu.max": "nonsense\n"}, None),
])
def test_cgroup_cpu_quotas(tmp_path, membership, files, limit):
    root, member = cgroup(tmp_path, membership, files)
    assert cpus.cgroup_cpu_limit(root, member) == limit


def test_a_ray_actor_runs_the_threads_of_its_cpus(monkeypatch, official):
    """pydarknet.ray.Detector outside Ray: this process's CPUs; threads= rules."""
    import pydarknet.ray

    before = pydarknet.get_num_threads()
    try:
        assert pydarknet.ray.Detector("yolov3-tiny", threads=1).threads == 1 == pydarknet.get_num_threads()
        monkeypatch.setattr(cpus, "_affinity", lambda: 1)
        assert pydarknet.ray.actor_cpus() == 1
    finally:
        pydarknet.set_num_threads(before)


def test_a_gnu_openmp_loaded_before_keeps_its_policy_and_says_so():
    """libgomp loaded by someone else first has read its settings already."""
    code = """
    import ctypes, json
    ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
    import pydarknet
    print(json.dumps(pydarknet.thread_policy()))
    """
    assert run_python(code, env=clean_environment())["wait"].startswith("the OpenMP runtime's own")
