"""One plain TCP connection to a Kafka broker for the raw-request test
scripts (group_edges.py, txn_raw.py): kafka-python's request and response
classes, framed and correlated by hand, so a script can send exactly the
request and version it means to, which a client library would not.

Requests are answered in order; every receive has a deadline.
"""
import socket
import struct


class Conn:
    """One connection to host:port; `call` sends one request and returns
    its decoded response."""

    def __init__(self, host, port, client_id, response_timeout):
        self.addr = (host, int(port))
        self.client_id = client_id
        self.sock = socket.create_connection(self.addr, timeout=10)
        self.sock.settimeout(response_timeout)
        self.cid = 0

    @classmethod
    def to(cls, bootstrap, client_id, response_timeout):
        """A connection to `bootstrap` ("host:port")."""
        host, port = bootstrap.rsplit(":", 1)
        return cls(host, port, client_id, response_timeout)

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"{self.addr} closed the connection")
            buf += chunk
        return buf

    def call(self, req_cls, resp_cls, version, **fields):
        self.cid += 1
        req = req_cls[version](**fields)
        req.with_header(correlation_id=self.cid, client_id=self.client_id)
        self.sock.sendall(req.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", self._recv(4))
        resp = resp_cls.decode(self._recv(size), version=version, header=True)
        if resp.header.correlation_id != self.cid:
            raise RuntimeError(f"correlation id {resp.header.correlation_id}, expected {self.cid}")
        return resp

    def close(self):
        self.sock.close()
