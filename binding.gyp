# Builds build/Release/usernet.node from native/usernet.cc (`npx node-gyp rebuild`).
# node-addon-api with C++ exceptions enabled (NAPI_CPP_EXCEPTIONS via
# node_addon_api_except), Node-API version 8, -O2.
{
  'targets': [
    {
      'target_name': 'usernet',
      'sources': [ 'native/usernet.cc' ],
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
