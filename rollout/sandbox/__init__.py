"""The local sandbox: real stand-ins for MongoDB, S3, Prometheus and the service.

Everything listens on 127.0.0.1 on free ports and keeps its state in one
temporary directory; :class:`~rollout.sandbox.stack.Sandbox` starts and stops it.
"""
