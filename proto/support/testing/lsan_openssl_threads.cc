// Test support, linked into test binaries that run gRPC over TLS: LeakSanitizer suppressions for
// OpenSSL's per-thread state (DRBGs, error queue) created on gRPC 1.51's event-engine threads
// during TLS handshakes. Those threads are still running when the process exits, so OpenSSL's
// thread-exit cleanup never frees that state and LSan intermittently reports it (seen under
// ctest -j: "Direct leak of 40 bytes ... EVP_RAND_CTX_new ... RAND_get0_public ...
// tsi_ssl_client_handshaker_factory_create_handshaker"). Only frames that allocate nothing but
// OpenSSL's own thread-local state are listed, so a leaked X509 or EVP_PKEY is still reported.
// Suppressions match stack frames, and libcrypto has no frame pointers: the fast unwinder stops at
// CRYPTO_zalloc, so these binaries default to the slow, complete one.
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }

extern "C" const char* __lsan_default_suppressions() {
  return "leak:RAND_get0_public\n"
         "leak:RAND_get0_private\n"
         "leak:RAND_get0_primary\n"
         "leak:ossl_err_get_state_int\n"
         "leak:ERR_clear_error\n"
         "leak:ERR_set_mark\n"
         "leak:ERR_new\n";
}
