# Builds build/Release/usernet.node from native/*.cc (`npx node-gyp rebuild`):
# addon.cc (the N-API class), core.cc (the shared batch I/O core), one file
# per device kind (tap, packet, tunnel, unix, stream), watch.cc, open.cc.
# node-addon-api with C++ exceptions enabled (NAPI_CPP_EXCEPTIONS via
# node_addon_api_except), Node-API version 8, -O2.
{
  'targets': [
    {
      'target_name': 'usernet',
      'sources': [
        'native/addon.cc', 'native/core.cc', 'native/watch.cc', 'native/open.cc',
        'native/tap.cc', 'native/packet.cc', 'native/tunnel.cc', 'native/unix.cc', 'native/stream.cc',
      ],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': [ 'NAPI_VERSION=8' ],
      'cflags!': [ '-O3' ],
      'cflags': [ '-O2' ],
      'cflags_cc': [ '-std=c++17' ],
    },
    # build/Release/usernet_seal.node from native/seal.cc: AES-256-GCM seal/open
    # of encrypted-overlay frames (src/overlay/seal-native.ts). OpenSSL headers
    # are Node's bundled ones (on the include path node-gyp sets up); the
    # symbols are exported by the node binary, so nothing is linked.
    {
      'target_name': 'usernet_seal',
      'sources': [ 'native/seal.cc' ],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': [ 'NAPI_VERSION=8' ],
      'cflags!': [ '-O3' ],
      'cflags': [ '-O2' ],
      'cflags_cc': [ '-std=c++17' ],
    },
  ],
}
