using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;

namespace Morphisms.Samples.Tests;

/// <summary>The samples' function.yaml files load with the real spec loader and name the built entry points.</summary>
public sealed class FunctionSpecTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-sample-spec-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("signer", "Signer", "secret/data/signer")]
    [InlineData("hello", "Hello", null)]
    public void The_spec_loads_and_runs_the_published_dll(string sample, string assemblyName, string? secrets)
    {
        var yaml = File.ReadAllText(Path.Combine(SamplesDirectory(), sample, FunctionSpecLoader.FileName));

        // The bundle (publish/) exists only after samples/build.sh: stand one in beside a copy of the spec.
        Directory.CreateDirectory(Path.Combine(_dir, "publish"));
        var spec = FunctionSpecLoader.Parse(yaml, _dir);

        Assert.Equal(sample, spec.Name);
        Assert.Equal(FunctionTee.Sim, spec.Tee);
        Assert.Equal(Path.Combine(_dir, "publish"), spec.Bundle);
        Assert.Equal(["dotnet", $"{assemblyName}.dll"], spec.Command);
        Assert.Equal(8080, spec.Port);
        Assert.Equal(secrets, spec.Secrets);
        Assert.Equal(0, spec.Scale.Min);
        Assert.Equal(Path.GetFileName(SampleProcess.Locate(assemblyName)), spec.Command[1]);
    }

    private static string SamplesDirectory()
    {
        var root = typeof(FunctionSpecTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .OfType<System.Reflection.AssemblyMetadataAttribute>()
            .Single(a => a.Key == "RepositoryRoot").Value!;
        return Path.Combine(root, "samples");
    }
}
