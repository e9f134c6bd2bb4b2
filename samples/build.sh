#!/usr/bin/env bash
# Publishes the samples into samples/<name>/publish/ (gitignored): the bundles their function.yaml files name.
#   bash samples/build.sh            framework-dependent ReadyToRun (default; runs with `dotnet X.dll`)
#   MORPH_NATIVE_AOT=1 bash samples/build.sh
#                                    NativeAOT single binaries (needs the ILCompiler packages from NuGet and clang);
#                                    point function.yaml's command at ["./Signer"] / ["./Hello"] then.
# Extra arguments go to every `dotnet publish`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rid="${MORPH_RID:-linux-x64}"
extra=()
if [[ "${MORPH_NATIVE_AOT:-0}" == 1 ]]; then
  extra+=(-p:MorphNativeAot=true)
fi

for project in signer/Signer.csproj hello/Hello.csproj; do
  dir="$here/$(dirname "$project")"
  rm -rf "$dir/publish"
  dotnet publish "$here/$project" -c Release -r "$rid" -o "$dir/publish" \
    -p:DebugType=none "${extra[@]}" "$@"
done
echo "published: $here/signer/publish $here/hello/publish"
