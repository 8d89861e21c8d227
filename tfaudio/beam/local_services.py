"""Local stand-ins for a Beam cluster, on loopback only: a portable job service with external SDK worker
pools (what Flink and Dataflow run through: the Fn API over gRPC, workers in other processes), and a
``dask.distributed`` cluster for Beam's DaskRunner.

Each service is a child process in its own process group, bound to 127.0.0.1 on a port picked free at
start, waited for with a deadline and killed (the whole group) on exit::

    with LocalPortableCluster(workers=2) as cluster:
        run_embed(manifest, "yamnet", root, runner="PortableRunner", options=cluster.options())
    with LocalDaskCluster(workers=2) as cluster:
        run_embed(manifest, "yamnet", root, runner="DaskRunner", options=cluster.options())

Beam's own launchers (``local_job_service_main``, ``worker_pool_main``) bind their gRPC servers to every
interface (``[::]``); ``python -m tfaudio.beam.local_services job-service|worker-pool --port P`` runs the
same servicers with every gRPC port of the process bound to 127.0.0.1 instead, and the job service
honours ``--direct_num_workers`` (Beam's runs every job on one SDK worker).

The worker pool starts each SDK worker as ``python -c ...`` (the first ``python`` on ``PATH``), so the
pool is started with this interpreter's folder first on ``PATH``; workers inherit ``env``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from tfaudio.errors import TfaudioError

LOOPBACK = "127.0.0.1"
#: Seconds a service may take to accept connections before it counts as failed.
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


class _Service:
    """One child process (own session, so its workers die with it), its log file and its port."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: str, env: Mapping[str, str]):
        self.name, self.port, self.log_path = name, port, log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(list(argv), stdout=self._log, stderr=subprocess.STDOUT, env=dict(env),
                                     start_new_session=True, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TfaudioError(f"the local {self.name} exited at start (code {self.proc.returncode}); "
                                   f"its log {self.log_path} says:\n{self.tail()}")
            if _listening(self.port):
                return
            time.sleep(0.2)
        raise TfaudioError(f"the local {self.name} did not listen on {LOOPBACK}:{self.port} within {timeout:.0f} s "
                           f"(log {self.log_path}):\n{self.tail()}")

    def tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def terminate(self) -> None:
        """SIGTERM to the process group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout`` seconds (and to what is left of the
        group in any case: the pool's SDK workers)."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # the group's stragglers (SDK workers), if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self._log.close()


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(os.environ if env is None else env)
    bindir = os.path.dirname(sys.executable)
    out["PATH"] = bindir + os.pathsep + out.get("PATH", "")  # the worker pool runs `python` from PATH
    return out


class _Cluster(contextlib.AbstractContextManager):
    def __init__(self, workers: int, log_dir: str | None, env: Mapping[str, str] | None, timeout: float):
        if workers < 1:
            raise TfaudioError(f"workers must be >= 1, got {workers}.")
        self.workers = workers
        self.env = _child_env(env)
        self.timeout = timeout
        self._tmp = None
        if log_dir is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="tfaudio-cluster-")
            log_dir = self._tmp.name
        self.log_dir = log_dir
        self.services: list[_Service] = []

    def _start(self, name: str, argv: Sequence[str], port: int) -> _Service:
        svc = _Service(name, argv, port, os.path.join(self.log_dir, f"{name.replace(' ', '-')}.log"), self.env)
        self.services.append(svc)
        return svc

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Stops every service (SIGTERM to all, latest first; then each gets up to 3 s before SIGKILL);
        safe to call twice."""
        for svc in reversed(self.services):
            svc.terminate()
        while self.services:
            self.services.pop().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ({s.log_path})\n{s.tail()}" for s in self.services)


class LocalPortableCluster(_Cluster):
    """A Beam job service and one external SDK worker pool, as child processes on 127.0.0.1.

    The job service runs each job on Beam's FnApiRunner, which asks the pool for ``workers`` SDK worker
    processes (``--direct_num_workers``); those unpickle the DoFns and talk to it over the Fn API.

    Args:
        workers: SDK worker processes per job.
        log_dir: where the services' logs go (default: a temporary folder removed on exit).
        env: the services' environment (default: this process's); SDK workers inherit it.
        timeout: seconds each service may take to start.
    """

    def __init__(self, workers: int = 2, log_dir: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = START_TIMEOUT):
        super().__init__(workers, log_dir, env, timeout)
        self.job_port = self.pool_port = None

    def start(self) -> None:
        self.pool_port, self.job_port = free_port(), free_port()
        pool = self._start("worker pool", [sys.executable, "-m", __name__, "worker-pool", "--port",
                                           str(self.pool_port)], self.pool_port)
        job = self._start("job service", [sys.executable, "-m", __name__, "job-service", "--port",
                                          str(self.job_port)], self.job_port)
        pool.wait_ready(self.timeout)
        job.wait_ready(self.timeout)

    def options(self) -> list[str]:
        """The pipeline flags that send a job here (with ``runner="PortableRunner"``)."""
        return [f"--job_endpoint={LOOPBACK}:{self.job_port}", "--environment_type=EXTERNAL",
                f"--environment_config={LOOPBACK}:{self.pool_port}", f"--direct_num_workers={self.workers}"]


class LocalDaskCluster(_Cluster):
    """A ``dask.distributed`` scheduler and ``workers`` worker processes (one thread each, no nanny, no
    dashboard; their HTTP health servers, which start anyway, on 127.0.0.1 too), as child processes on
    127.0.0.1.

    Args: as :class:`LocalPortableCluster`.
    """

    def __init__(self, workers: int = 2, log_dir: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = START_TIMEOUT):
        super().__init__(workers, log_dir, env, timeout)
        self.scheduler_port = None

    @property
    def address(self) -> str:
        return f"tcp://{LOOPBACK}:{self.scheduler_port}"

    def start(self) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError as err:
            raise TfaudioError(f"the Dask runner needs dask.distributed ({err}). Fix: pip install "
                               "'tfaudio[dask]' (or pip install 'apache-beam[dask]').") from None
        self.scheduler_port = free_port()
        self._start("dask scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", LOOPBACK,
                                       "--port", str(self.scheduler_port), "--no-dashboard",
                                       "--dashboard-address", f"{LOOPBACK}:0"],
                    self.scheduler_port).wait_ready(self.timeout)
        ports = [free_port() for _ in range(self.workers)]
        for i, port in enumerate(ports):
            self._start(f"dask worker {i}", [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                                             "--host", LOOPBACK, "--worker-port", str(port), "--no-nanny",
                                             "--nthreads", "1", "--no-dashboard", "--dashboard-address",
                                             f"{LOOPBACK}:0", "--name", f"w{i}",
                                             "--local-directory", self.log_dir], port)
        for svc in self.services[1:]:
            svc.wait_ready(self.timeout)
        self._wait_registered()

    def _wait_registered(self) -> None:
        from distributed import Client

        with Client(self.address, timeout=self.timeout) as client:
            client.wait_for_workers(self.workers, timeout=self.timeout)

    def options(self) -> list[str]:
        """The pipeline flags that send a job here (with ``runner="DaskRunner"``)."""
        return [f"--dask_client_address={self.address}", f"--dask_npartitions={2 * self.workers}"]


# ---- the service processes -------------------------------------------------------------------------
def _bind_grpc_to_loopback() -> None:
    """Every gRPC server of this process binds 127.0.0.1, whatever address Beam asks for."""
    import grpc._server

    original = grpc._server._Server.add_insecure_port

    def add_insecure_port(self, address: str) -> int:
        _, _, port = address.rpartition(":")
        return original(self, f"{LOOPBACK}:{port}")

    grpc._server._Server.add_insecure_port = add_insecure_port


def _apply_num_workers() -> None:
    """Beam's local job service hands each job to ``FnApiRunner.run_via_runner_api``, which skips where
    ``FnApiRunner.run_pipeline`` reads ``--direct_num_workers``: every job would get one SDK worker.
    This applies the option there, so a job asks the worker pool for that many worker processes."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    original = fn_runner.FnApiRunner.run_via_runner_api

    def run_via_runner_api(self, pipeline_proto, options):
        self._num_workers = max(1, int(options.view_as(DirectOptions).direct_num_workers or 1))
        return original(self, pipeline_proto, options)

    fn_runner.FnApiRunner.run_via_runner_api = run_via_runner_api


def _serve_forever(stop) -> None:
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    try:
        while not done:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import logging

    ap = argparse.ArgumentParser(prog="python -m tfaudio.beam.local_services", description=__doc__.splitlines()[0])
    ap.add_argument("service", choices=["job-service", "worker-pool"])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    _bind_grpc_to_loopback()
    if args.service == "worker-pool":
        from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer

        _, server = BeamFnExternalWorkerPoolServicer.start(use_process=True, port=args.port)
        _serve_forever(lambda: server.stop(1))
    else:
        from apache_beam.runners.portability.local_job_service import LocalJobServicer

        _apply_num_workers()
        servicer = LocalJobServicer()
        servicer.start_grpc_server(args.port)
        _serve_forever(servicer.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
