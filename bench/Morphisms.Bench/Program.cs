using BenchmarkDotNet.Running;
using Morphisms.Bench;

// Run all: dotnet run -c Release --project bench/Morphisms.Bench -- --filter '*'
// BenchmarkDotNet runs each benchmark in a child process elsewhere on disk, so the vectors
// are located here and handed down through the environment.
Environment.SetEnvironmentVariable("MORPHISMS_TESTVECTORS", BenchVectors.Root());
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
