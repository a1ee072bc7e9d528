//! `uniffi-bindgen`: generates the Swift sources, C header and modulemap of the Swift binding
//! from the compiled `polyroute-ffi` library (library mode: the metadata is read from the
//! library itself, so there is no UDL file to keep in sync).
//!
//! A separate crate so the generator's heavy dependencies never link into the library.

fn main() {
    uniffi::uniffi_bindgen_main()
}
