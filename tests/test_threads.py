"""Threads: one network shared safely, separate networks in parallel, GIL released."""

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import pydarknet

from conftest import random_input


def test_one_network_shared_by_threads_gives_sequential_results(tiny_cfg, tiny_weights):
    inputs = [random_input((3, 16, 16), seed=s) for s in range(16)]
    with pydarknet.Network(tiny_cfg, tiny_weights) as net:
        expected = [net.predict(x) for x in inputs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(net.predict, inputs))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_two_networks_in_parallel_threads(yolo_cfg, yolo_weights, tiny_cfg, tiny_weights):
    x_yolo, x_tiny = random_input((3, 416, 416), seed=7), random_input((3, 16, 16), seed=8)
    with pydarknet.Network(yolo_cfg, yolo_weights) as yolo, pydarknet.Network(tiny_cfg, tiny_weights) as tiny:
        expected = (yolo.predict(x_yolo), tiny.predict(x_tiny))
        with ThreadPoolExecutor(max_workers=2) as pool:
            got_yolo = pool.submit(yolo.predict, x_yolo)
            got_tiny = [pool.submit(tiny.predict, x_tiny) for _ in range(5)]
            np.testing.assert_array_equal(got_yolo.result(), expected[0])
            for future in got_tiny:
                np.testing.assert_array_equal(future.result(), expected[1])


def test_python_threads_run_while_darknet_computes(yolo_cfg):
    """With a huge switch interval a thread holding the GIL keeps it until it blocks.
    The main thread can only look at `finished` while predict runs if predict
    released the GIL; otherwise the worker holds it until after setting `finished`."""
    with pydarknet.Network(yolo_cfg) as net:
        x = random_input(net.input_shape)
        started, finished = threading.Event(), []

        def work():
            started.set()
            net.predict(x)  # about a second of C code
            finished.append(True)

        old = sys.getswitchinterval()
        sys.setswitchinterval(100.0)
        try:
            worker = threading.Thread(target=work)
            worker.start()
            started.wait()
            seen_during = not finished
            worker.join()
        finally:
            sys.setswitchinterval(old)
        assert seen_during


def test_thread_count_changes_no_result_beyond_rounding(yolo_cfg, yolo_weights):
    """The OpenMP loops and the split GEMM on 1, 2 and 3 threads (more threads than
    cores included): the same outputs up to float32 rounding of the GEMM blocks."""
    x = random_input((2, 3, 416, 416), seed=3)
    features = pydarknet.build_info()["features"]
    threaded = features["openmp"] or features["blas"] != "none"  # else always one thread
    before = pydarknet.get_num_threads()
    outputs = []
    try:
        with pydarknet.Network(yolo_cfg, yolo_weights, batch=2) as net:
            for threads in (1, 2, 3):
                pydarknet.set_num_threads(threads)
                assert pydarknet.get_num_threads() == (threads if threaded else 1)
                outputs.append(net.predict(x))
    finally:
        pydarknet.set_num_threads(before)
    for other in outputs[1:]:
        assert np.abs(other - outputs[0]).max() <= 1e-5 * np.abs(outputs[0]).max()
