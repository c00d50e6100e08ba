"""kmock, a Kubernetes API emulator over real HTTP, run in a thread for synchronous client code.

kmock stores objects but runs no controllers and fills in no uid or
resourceVersion; the objects built here carry what a real cluster would have
set (uids, owner references, revision annotations), which is all the shim there is.
"""

import asyncio
import threading
from typing import Any

import kmock

NAMESPACE = "shop"


class EmulatorThread:
    """A kmock KubernetesEmulator serving on a free port from its own event loop."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(),), daemon=True
        )
        self.url = ""
        self.handler: Any = None

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            self.handler = handler
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> "EmulatorThread":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("kmock did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def on_loop(self, action: Any) -> None:
        """Run ``action(handler)`` on the emulator's loop (kmock's DSL is not thread-safe)."""
        done = threading.Event()

        def run() -> None:
            action(self.handler)
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)


def deployment(name: str, image: str, revision: int, uid: str, replicas: int = 4) -> dict[str, Any]:
    """A Deployment as the API server would return it after ``revision`` rollouts."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, image),
        },
    }


def pod_template(app: str, image: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pod template with one container."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}], **(extra or {})}
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def replica_set(deployment_name: str, owner_uid: str, image: str, revision: int) -> dict[str, Any]:
    """A ReplicaSet the Deployment controller made for ``revision``."""
    template = pod_template(deployment_name, image)
    template["metadata"]["labels"]["pod-template-hash"] = f"h{revision}"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deployment_name}-h{revision}",
            "namespace": NAMESPACE,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "labels": {"app": deployment_name, "pod-template-hash": f"h{revision}"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment_name,
                    "uid": owner_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": deployment_name}}, "template": template},
    }
