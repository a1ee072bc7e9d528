//! napi-rs link setup: lets the cdylib resolve N-API symbols from the host `node` process.
fn main() {
    napi_build::setup();
}
