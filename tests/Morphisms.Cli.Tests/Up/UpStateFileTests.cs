using Morphisms.Cli.Commands.Up;

namespace Morphisms.Cli.Tests.Up;

/// <summary><c>up.json</c> (and the KMS token and certificate files beside it) are written through a temporary file of their own.</summary>
public sealed class UpStateFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-upstate-").FullName;

    private string Path_ => Path.Combine(_dir, UpStateFile.FileName);

    [Fact]
    public void ASymlinkPlantedAtTheOldTemporaryName_IsNeitherFollowedNorRemoved()
    {
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "the victim's");
        var planted = Path_ + ".tmp";
        File.CreateSymbolicLink(planted, victim);

        State(1).Write(Path_);

        Assert.Equal("the victim's", File.ReadAllText(victim));
        Assert.Equal(victim, new FileInfo(planted).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path_));
        Assert.Contains("\"pid\": 1", File.ReadAllText(Path_));
    }

    [Fact]
    public void TwoWritersAtOnce_BothSucceed_AndTheFileIsOneOfThemWhole()
    {
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            try
            {
                State(i % 2).Write(Path_);
            }
            catch (Exception e)
            {
                failures.Enqueue(e);
            }
        });

        Assert.Empty(failures);
        var text = File.ReadAllText(Path_);
        Assert.True(text.Contains("\"pid\": 0", StringComparison.Ordinal) || text.Contains("\"pid\": 1", StringComparison.Ordinal), text);
        Assert.Equal([Path_], Directory.GetFiles(_dir));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static UpStateFile State(int pid) =>
        new("https://127.0.0.1:8200/", "/data/kms/tls.pem", new string('a', 64), "/data/kms/token", "127.0.0.1:8443", "fn.morphisms.local", "http://127.0.0.1:4100/", pid);
}
