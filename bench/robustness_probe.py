#!/usr/bin/env python3
"""robustness_probe.py — the robustness bench's probes (bench/robustness.ts),
run inside a namespace the bench made. Every mode stops by itself.

  connects HOST PORT N SECONDS TIMEOUT
      N new TCP connections, attempt i started at i*SECONDS/N (each in its own
      thread, so a slow one does not delay the next): connect, send a line,
      read it back from the echo server, within TIMEOUT s. Prints one JSON
      line {"ok": K, "n": N, "p50_ms": .., "max_ms": ..} (latencies of the
      successful ones).
  malformed IFACE COUNT
      COUNT malformed frames over an AF_PACKET socket on IFACE (batches of
      100, 5 ms apart): a multicast source MAC, a truncated ARP, IPv4 with
      IHL 1, IPv4 whose total length overruns the frame, a truncated 802.1Q
      header, runts of 1–13 bytes, and random bytes after a valid source MAC.
      Prints "sent N".
"""
import json, os, random, socket, struct, sys, threading, time

mode = sys.argv[1]

if mode == 'connects':
    host, port, n, seconds, timeout = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    if n > 1000 or seconds > 60 or timeout > 10:
        sys.exit('refusing: at most 1000 connects, 60 s, a 10 s timeout')
    lat = []
    lock = threading.Lock()

    def attempt():
        t0 = time.monotonic()
        try:
            s = socket.create_connection((host, port), timeout=timeout)
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            s.sendall(b'probe\n')
            got = b''
            while not got.endswith(b'\n'):
                d = s.recv(64)
                if not d:
                    raise ConnectionError('closed')
                got += d
            s.close()
            if time.monotonic() - t0 <= timeout:
                with lock:
                    lat.append((time.monotonic() - t0) * 1000)
        except Exception:
            pass

    threads = []
    start = time.monotonic()
    for i in range(n):
        wait = start + i * seconds / n - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t = threading.Thread(target=attempt, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout + 1)
    lat.sort()
    print(json.dumps({'ok': len(lat), 'n': n, 'p50_ms': lat[len(lat) // 2] if lat else None, 'max_ms': lat[-1] if lat else None}), flush=True)
elif mode == 'malformed':
    ifc, count = sys.argv[2], int(sys.argv[3])
    if count > 100_000:
        sys.exit('refusing: at most 100,000 frames')
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifc, 0))
    me = bytes.fromhex(open(f'/sys/class/net/{ifc}/address').read().strip().replace(':', ''))
    rnd = random.Random(int.from_bytes(os.urandom(4), 'big'))
    bcast = b'\xff' * 6
    fixed = [
        bcast + b'\x01\x00\x5e\x00\x00\x01' + b'\x08\x00' + b'\x00' * 46,  # multicast source MAC
        bcast + me + b'\x08\x06' + b'\x00\x01\x08',  # truncated ARP
        bcast + me + b'\x08\x00' + b'\x41' + b'\x00' * 45,  # IPv4 with IHL 1
        bcast + me + b'\x08\x00' + b'\x45\x00\xff\xff' + b'\x00' * 42,  # IPv4 total length past the frame
        bcast + me + b'\x81\x00\x00',  # truncated 802.1Q tag
    ]
    sent = 0
    for i in range(count):
        k = i % 8
        if k < len(fixed):
            f = fixed[k]
        elif k == 5:
            f = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 14)))  # runt
        else:
            f = bcast + me + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(2, 120)))
        try:
            s.send(f)
            sent += 1
        except OSError:
            pass
        if i % 100 == 99:
            time.sleep(0.005)
    print(f'sent {sent}', flush=True)
else:
    sys.exit(f'unknown mode {mode}')
