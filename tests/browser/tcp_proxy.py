"""A TCP proxy on 127.0.0.1 that can cut every connection through it at once, like a network that drops."""

from __future__ import annotations

import select
import socket
import struct
import threading

import attrs


@attrs.define(eq=False)
class TcpProxy:
    """Forwards connections from `port` to `target_port`; `drop_all()` resets them without a close handshake."""

    target_port: int
    port: int = 0
    _listener: socket.socket = attrs.field(init=False)
    _pairs: list[tuple[socket.socket, socket.socket]] = attrs.field(factory=list, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _stopping: threading.Event = attrs.field(factory=threading.Event, init=False)

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy-accept").start()
        return self

    def drop_all(self) -> int:
        """Reset every open connection (RST, no FIN, no WebSocket close); returns how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)
        return len(pairs)

    def stop(self) -> None:
        self._stopping.set()
        self.drop_all()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True, name="tcp-proxy-pump").start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in peers:
                sock.close()


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
