#!/usr/bin/env bash
# Publishes the samples into samples/<name>/publish/ (gitignored): the bundles their function.yaml files name.
#   bash samples/build.sh            framework-dependent ReadyToRun (default; runs with `dotnet X.dll`)
#   MORPH_NATIVE_AOT=1 bash samples/build.sh
#                                    NativeAOT single binaries into samples/<name>/publish-aot/ (needs the ILCompiler
#                                    packages from NuGet and a C toolchain; ~1-2 min per sample); the cold-start bench
#                                    runs these by default. To deploy one, point function.yaml's bundle at
#                                    ./publish-aot and its command at ["./Signer"] / ["./Hello"].
# Extra arguments go to every `dotnet publish`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rid="${MORPH_RID:-linux-x64}"
extra=()
out=publish
if [[ "${MORPH_NATIVE_AOT:-0}" == 1 ]]; then
  extra+=(-p:MorphNativeAot=true)
  out=publish-aot
fi

for project in signer/Signer.csproj hello/Hello.csproj; do
  dir="$here/$(dirname "$project")"
  rm -rf "${dir:?}/$out"
  dotnet publish "$here/$project" -c Release -r "$rid" -o "$dir/$out" \
    -p:DebugType=none "${extra[@]}" "$@"
done
echo "published: $here/signer/$out $here/hello/$out"
