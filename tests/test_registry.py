"""The model registry shared by a process's threads: Dask and Ray unpickle classes on threads of their own."""

from __future__ import annotations

import sys
import threading

from pydantic import BaseModel, create_model

from mongo_results import (
    clear_registry,
    find_model_in_all_namespaces,
    get_indexes,
    get_models_in_namespace,
    get_namespaces,
    register_model,
)


def test_registering_on_one_thread_while_others_read_the_registry() -> None:
    """A registration never changes a dict another thread is iterating over (it raised RuntimeError)."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                find_model_in_all_namespaces("M0")
                get_indexes("ns3")
                for namespace in get_namespaces():
                    get_models_in_namespace(namespace)
            except Exception as exc:
                errors.append(exc)
                return

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between almost every bytecode
    readers = [threading.Thread(target=reader) for _ in range(3)]
    try:
        for thread in readers:
            thread.start()
        for i in range(300):
            model: type[BaseModel] = create_model(f"M{i}", x=(int, 0))
            register_model(model, namespace=f"ns{i}", indexes=["x"])
            if i % 100 == 99:
                clear_registry()
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        sys.setswitchinterval(previous)
        clear_registry()
    assert errors == []
