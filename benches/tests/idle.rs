//! An idle recorder costs no wake-ups: the `xray-emitter` thread sleeps until work arrives,
//! is woken by the requests it sends, and then sleeps without polling (its
//! `voluntary_ctxt_switches` stay flat while nothing is recorded). While requests keep coming
//! it lingers, woken by its own timer rather than once per request.
//!
//! A test binary of its own, with one test, so that no other recorder's threads are around.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::time::Duration;

use xray_benches::{
    Peer, Request, Sink, XRAY_EMITTER_THREAD, XraySdkPeer, fresh_header, threads_named,
    voluntary_switches,
};

#[test]
fn an_idle_recorder_costs_no_wake_ups() {
    let before = threads_named(XRAY_EMITTER_THREAD);
    let sink = Sink::start().unwrap();
    let mut peer = XraySdkPeer::new(sink.addr());
    let req = Request::new(&fresh_header());
    // The first request, in case the thread starts with the first work.
    peer.request(&req);
    peer.flush();
    let emitter = threads_named(XRAY_EMITTER_THREAD)
        .into_iter()
        .find(|t| !before.contains(t))
        .expect("the recorder's emitter thread");

    // Work wakes it: ten requests, each after the thread has gone back to sleep (its linger
    // after work is 50 ms).
    let start = voluntary_switches(&emitter);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(120));
        peer.request(&req);
    }
    peer.flush();
    let woken = voluntary_switches(&emitter) - start;
    eprintln!("emitter woken {woken} times for 10 requests 120 ms apart and a flush");
    assert!(
        woken >= 5,
        "the emitter was woken {woken} times for 10 requests"
    );
    assert_eq!(sink.settle(11, Duration::from_secs(5)), 11);

    // A steady flow: 100 requests 2 ms apart (about 0.2 s, or 0.25 s with the sleeps'
    // slack) are sent by a thread that lingers between them and wakes on its own timer,
    // about every 50 ms, instead of being woken by each request.
    let start = voluntary_switches(&emitter);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(2));
        peer.request(&req);
    }
    assert_eq!(sink.settle(111, Duration::from_secs(5)), 111);
    let woken = voluntary_switches(&emitter) - start;
    eprintln!("emitter woken {woken} times for 100 requests 2 ms apart");
    assert!(
        woken <= 25,
        "the emitter was woken {woken} times for 100 requests 2 ms apart"
    );

    // Idle: once the linger after the last work has passed, not one wake-up in two seconds.
    std::thread::sleep(Duration::from_millis(200));
    let start = voluntary_switches(&emitter);
    std::thread::sleep(Duration::from_secs(2));
    let idle = voluntary_switches(&emitter) - start;
    eprintln!("emitter woken {idle} times in 2 s of idleness");
    assert_eq!(idle, 0, "the idle emitter woke {idle} times in 2 s");
}
