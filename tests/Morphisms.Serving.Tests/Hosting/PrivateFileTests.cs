using Morphisms.Attestation;
using Morphisms.Serving.Hosting;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Private files (state files, tokens) are written through a temporary file of their own: never one at a fixed name
/// that another writer shares or that someone planted (a symlink to a file of theirs to overwrite, or to read).
/// </summary>
public sealed class PrivateFileTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-private-").FullName;

    private string Target => Path.Combine(_dir, "serving.json");

    [Fact]
    public void AWrite_IsOwnerOnly_AndLeavesNoTemporaryFile()
    {
        PrivateFile.Write(Target, "one");
        PrivateFile.Write(Target, "two");

        Assert.Equal("two", File.ReadAllText(Target));
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(Target));
        Assert.Equal([Target], Directory.GetFiles(_dir));
    }

    [Fact]
    public void ASymlinkPlantedAtTheOldTemporaryName_IsNotFollowed()
    {
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "the victim's");
        var planted = Target + ".tmp";
        File.CreateSymbolicLink(planted, victim);

        new ServingStateFile("http://127.0.0.1:1/", "127.0.0.1:2", "http", 42).Write(Target);

        Assert.Equal("the victim's", File.ReadAllText(victim));
        Assert.Equal(victim, new FileInfo(planted).LinkTarget);
        Assert.Null(new FileInfo(Target).LinkTarget);
        Assert.Equal(42, ServingStateFile.Read(Target)!.Pid);
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(Target));
    }

    [Fact]
    public void AnotherWritersTemporaryFile_IsLeftAlone()
    {
        var theirs = Target + ".tmp";
        File.WriteAllText(theirs, "half written by another writer");

        PrivateFile.Write(Target, "mine");

        Assert.Equal("mine", File.ReadAllText(Target));
        Assert.Equal("half written by another writer", File.ReadAllText(theirs));
    }

    [Fact]
    public void ConcurrentWriters_AllSucceed_AndTheFileIsOneOfTheirsWhole()
    {
        var contents = Enumerable.Range(0, 8).Select(i => new string((char)('a' + i), 10_000)).ToArray();

        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => PrivateFile.Write(Target, contents[i % contents.Length]));

        Assert.Contains(File.ReadAllText(Target), contents);
        Assert.Equal([Target], Directory.GetFiles(_dir));
    }

    [Fact]
    public void AFailedWrite_LeavesNoTemporaryFile()
    {
        Directory.CreateDirectory(Target);

        Assert.ThrowsAny<IOException>(() => PrivateFile.Write(Target, "into a directory"));

        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void TryCreate_LeavesAFileThatIsThere_AndNoTemporaryFile()
    {
        File.WriteAllText(Target, "theirs");

        Assert.False(PrivateFile.TryCreate(Target, "mine"u8));

        Assert.Equal("theirs", File.ReadAllText(Target));
        Assert.Equal([Target], Directory.GetFiles(_dir));
    }

    [Fact]
    public void TryCreate_ConcurrentCreators_ExactlyOneWins_AndEveryoneFindsItsFileWhole()
    {
        const int Creators = 8;
        for (var round = 0; round < 50; round++)
        {
            var target = Path.Combine(_dir, $"state-{round}.json");
            var contents = Enumerable.Range(0, Creators).Select(i => new string((char)('a' + i), 100_000)).ToArray();
            var created = new bool[Creators];
            using var start = new Barrier(Creators);

            Parallel.For(0, Creators, new ParallelOptions { MaxDegreeOfParallelism = Creators }, i =>
            {
                start.SignalAndWait();
                created[i] = PrivateFile.TryCreate(target, System.Text.Encoding.UTF8.GetBytes(contents[i]));
            });

            var winner = Assert.Single(Enumerable.Range(0, Creators), i => created[i]);
            Assert.Equal(contents[winner], File.ReadAllText(target));
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(target));
        }

        Assert.Equal(50, Directory.GetFiles(_dir).Length);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
