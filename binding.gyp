{
  "targets": [
    {
      "target_name": "kdbus_native",
      "sources": [
        "<!@(ls -1 kdbus-native/*.cc kdbus-native/engine/*.cc kdbus-native/wire/*.cc)"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "kdbus-bridge-launcher",
      "type": "executable",
      "sources": [
        "<!@(ls -1 kdbus-native/launcher/*.cc)",
        "kdbus-native/wire/address.cc",
        "kdbus-native/wire/random.cc",
        "kdbus-native/wire/sha1.cc"
      ],
      "ldflags": ["-static-libstdc++", "-static-libgcc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "kdbus-bridge-service-exec",
      "type": "executable",
      "sources": ["kdbus-native/service-exec/main.cc"],
      "ldflags": ["-static-libstdc++", "-static-libgcc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
