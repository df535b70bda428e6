//! Hostile headers are refused *before* allocating what they announce: a
//! counting global allocator records the largest single allocation while
//! each reader runs. One test only, so no other test allocates meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use advclust_data::*;
use common::*;

struct Peak;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Runs `f` and returns its result and the largest single allocation made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    (out, LARGEST.load(Ordering::Relaxed))
}

const BOUND: usize = 16 << 20;

/// Gzip of `head` followed by `mib` MiB of zeros, compressed as a stream.
fn zeros_after(head: &[u8], mib: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(head).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn hostile_sizes_allocate_little() {
    let origin = Path::new("<mem>");

    // 5,000,000 images announced (3.9 GB of bytes, 15.7 GB as f32), then
    // 32 MB of zeros (32 kB compressed) of the 3.9 GB a real bomb inflates
    // to: refused from the header, before inflating the payload.
    let gz = zeros_after(&idx3(&[], 5_000_000, 28, 28), 32);
    let (r, peak) = largest_allocation(|| parse_idx_images(&gz, origin));
    assert!(matches!(r, Err(DataError::TooLarge { .. })), "{r:?}");
    assert!(peak < BOUND, "5M-image header allocated {peak} bytes");

    // 1,000,000 images announced: under the limit, but the inflated data
    // is 1,000 images; the capacity must follow the data, not the header.
    let gz = gzip(&idx3(&bytes(1000 * 784, 2), 1_000_000, 28, 28));
    let (r, peak) = largest_allocation(|| parse_idx_images(&gz, origin));
    assert!(matches!(r, Err(DataError::Truncated { .. })), "{r:?}");
    assert!(peak < BOUND, "1M-image header allocated {peak} bytes");

    // One 2x2 image announced, 64 MB of zeros inflated: decompression
    // stops storing at the announced size.
    let bomb = zeros_after(&idx3(&[1, 2, 3, 4], 1, 2, 2), 64);
    let (r, peak) = largest_allocation(|| parse_idx_images(&bomb, origin));
    assert!(matches!(r, Err(DataError::TrailingData { .. })), "{r:?}");
    assert!(peak < BOUND, "gzip bomb allocated {peak} bytes");

    // A PGM header of 60000 x 60000 with no pixels.
    let t = TempDir::new("alloc");
    let p = t.join("c/a.pgm");
    write(&p, b"P5\n60000 60000\n255\n");
    let (r, peak) = largest_allocation(|| {
        load_image_files(
            std::slice::from_ref(&p),
            vec![0],
            vec!["c".into()],
            ColorMode::Gray,
        )
    });
    assert!(matches!(r, Err(DataError::TooLarge { .. })), "{r:?}");
    assert!(peak < BOUND, "PGM header allocated {peak} bytes");

    // 20,000 files of 256 x 256 RGB announced by the first one.
    let p = t.join("c/b.png");
    rgb_image(&p, 256, 256, bytes(256 * 256 * 3, 4));
    let paths = vec![p; 20_000];
    let (r, peak) = largest_allocation(|| {
        load_image_files(&paths, vec![0; 20_000], vec!["c".into()], ColorMode::Rgb)
    });
    assert!(matches!(r, Err(DataError::TooLarge { .. })), "{r:?}");
    assert!(peak < BOUND, "20k images allocated {peak} bytes");
}
