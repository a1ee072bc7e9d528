//! Does waiting on a socket through a nested epoll set (the socket in an inner epoll fd, that
//! fd in the outer one, as Node's driver waits: `bindings-node/src/driver.rs`) make the peer's
//! write or the wake-up slower than waiting on the socket directly? (Issue 18, twenty-first
//! round: it costs ~2 µs, so it is not why Node's calls are slower after an idle gap.)
//!
//! `cargo run --release -p polyroute --example bench_nested_epoll [-- N]` (Linux). A server
//! thread answers 541 bytes per request, timing its send; the client sleeps 1 ms, sends 279
//! bytes and waits directly, nested, or nested with an `EPOLLONESHOT` re-arm per call, the
//! three alternating.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("epoll is Linux's");
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn epoll() -> i32 {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = unsafe { libc::epoll_create1(0) };
        assert!(fd >= 0);
        fd
    }

    fn ep_add(ep: i32, fd: i32, ev: u32) {
        let mut e = libc::epoll_event { events: ev, u64: fd as u64 };
        // SAFETY: epoll_ctl reads the event it is given.
        assert_eq!(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut e) }, 0);
    }
    fn ep_mod(ep: i32, fd: i32, ev: u32) {
        let mut e = libc::epoll_event { events: ev, u64: fd as u64 };
        // SAFETY: as in `ep_add`.
        assert_eq!(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, &mut e) }, 0);
    }
    fn ep_wait(ep: i32) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        loop {
            // SAFETY: epoll_wait writes at most 8 events into `evs`.
            let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 8, -1) };
            if n > 0 {
                return;
            }
        }
    }

    pub fn main() {
        let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // The server's last send time and how many it has answered (the client may wake before
        // the server's send returns).
        let send_ns = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let s2 = send_ns.clone();
        std::thread::spawn(move || {
            // one server thread per connection, blocking reads (as simple as the mock's worker)
            for c in l.incoming() {
                let mut c = c.unwrap();
                c.set_nodelay(true).unwrap();
                let s3 = s2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let answer = vec![b'x'; 541];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let t = Instant::now();
                        c.write_all(&answer).unwrap();
                        s3.0.store(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        s3.1.fetch_add(1, Ordering::Release);
                    }
                });
            }
        });
        let mut socks: Vec<TcpStream> = (0..3)
            .map(|_| {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let outer = epoll();
        // direct: socket 0 in `outer`
        ep_add(outer, socks[0].as_raw_fd(), libc::EPOLLIN as u32);
        // nested: socket 1 in `inner` (level), socket 2 in `inner_os` (oneshot, re-armed per call)
        let inner = epoll();
        let inner_os = epoll();
        ep_add(inner, socks[1].as_raw_fd(), libc::EPOLLIN as u32);
        ep_add(inner_os, socks[2].as_raw_fd(), (libc::EPOLLIN | libc::EPOLLONESHOT) as u32);
        let outer1 = epoll();
        ep_add(outer1, inner, libc::EPOLLIN as u32);
        let outer2 = epoll();
        ep_add(outer2, inner_os, libc::EPOLLIN as u32);
        let req = vec![b'r'; 279];
        let mut lat: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut snd: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut buf = vec![0u8; 16384];
        for i in 0..(n * 3 + 300) {
            let k = i % 3;
            std::thread::sleep(Duration::from_millis(1));
            let t = Instant::now();
            socks[k].write_all(&req).unwrap();
            match k {
                0 => ep_wait(outer),
                1 => {
                    ep_wait(outer1);
                    ep_wait(inner);
                }
                _ => {
                    ep_mod(inner_os, socks[2].as_raw_fd(), (libc::EPOLLIN | libc::EPOLLONESHOT) as u32);
                    ep_wait(outer2);
                    ep_wait(inner_os);
                }
            }
            let mut got = 0;
            while got < 541 {
                match socks[k].read(&mut buf) {
                    Ok(0) => panic!("the server closed the connection"),
                    Ok(m) => got += m,
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
                }
            }
            let rt = t.elapsed().as_secs_f64() * 1e6;
            while send_ns.1.load(Ordering::Acquire) < i as u64 + 1 {
                std::hint::spin_loop();
            }
            if i >= 300 {
                lat[k].push(rt);
                snd[k].push(send_ns.0.load(Ordering::Relaxed) as f64 / 1e3);
            }
        }
        let p50 = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        for (k, name) in ["direct epoll", "nested epoll (level)", "nested epoll (oneshot re-armed)"].iter().enumerate() {
            println!("{name:34} round trip p50 {:6.1} µs   server's send p50 {:5.1} µs", p50(&mut lat[k]), p50(&mut snd[k]));
        }
    }
}
