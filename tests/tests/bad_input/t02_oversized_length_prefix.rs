//! A length prefix over the frame limit is refused from the prefix alone: the node does not
//! allocate what it claims (checked through the node's peak virtual memory) and carries on.

use crate::{send_expecting_refusal, Target};

/// `VmPeak` of a process, in KiB.
fn vm_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak in /proc/<pid>/status")
}

#[test]
fn an_oversized_length_prefix_is_refused_without_allocating() {
    let mut target = Target::start();
    let pid = target.cluster.node(1).pid();
    let peak_before = vm_peak_kib(pid);

    for claimed in [0x8000_0000u32, u32::MAX, 1024 * 1024 + 1] {
        let mut frame = claimed.to_be_bytes().to_vec();
        frame.extend_from_slice(&[1; 16]);
        send_expecting_refusal(
            &mut target,
            &frame,
            &format!("frame of {claimed} bytes exceeds the limit of 1048576"),
        );
    }

    let peak_after = vm_peak_kib(pid);
    assert!(
        peak_after < peak_before + 512 * 1024,
        "the node's peak virtual memory grew from {peak_before} KiB to {peak_after} KiB"
    );
    target.assert_unchanged();
}
