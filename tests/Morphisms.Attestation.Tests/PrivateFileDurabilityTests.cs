using System.Text;

namespace Morphisms.Attestation.Tests;

/// <summary>
/// A private file's name survives a crash: once the new file is published under its name (renamed or linked there),
/// its directory is flushed, and a flush that fails is reported with the file left in place. Also the temporary file's
/// exclusive creation, moved here from the trust store's tests when the store began to write through PrivateFile.
/// </summary>
public sealed class PrivateFileDurabilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-durable-").FullName;

    private string Target => Path.Combine(_dir, "sub", "state.json");

    [Fact]
    public void A_write_flushes_the_files_directory_after_the_new_content_is_under_its_name()
    {
        PrivateFile.Write(Target, "old"u8, _ => { });
        var synced = new List<string>();

        PrivateFile.Write(Target, "new"u8, directory =>
        {
            // Flushed after the rename: the name holds the new content already, and no temporary file is left.
            Assert.Equal("new", File.ReadAllText(Target));
            Assert.Equal([Target], Directory.GetFiles(directory));
            synced.Add(directory);
        });

        Assert.Equal([Path.GetDirectoryName(Target)!], synced);
    }

    [Fact]
    public void A_relative_path_flushes_the_directory_it_resolves_to()
    {
        var synced = new List<string>();
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, Target);

        PrivateFile.Write(relative, "content"u8, synced.Add);

        Assert.Equal([Path.GetDirectoryName(Target)!], synced);
    }

    [Fact]
    public void A_created_file_flushes_its_directory_after_the_link_and_an_existing_one_flushes_nothing()
    {
        var synced = new List<string>();

        Assert.True(PrivateFile.TryCreate(Target, "mine"u8, directory =>
        {
            Assert.Equal("mine", File.ReadAllText(Target));
            Assert.Equal([Target], Directory.GetFiles(directory));
            synced.Add(directory);
        }));
        Assert.False(PrivateFile.TryCreate(Target, "theirs"u8, synced.Add));

        Assert.Equal([Path.GetDirectoryName(Target)!], synced);
    }

    [Fact]
    public void A_failed_directory_flush_is_reported_and_the_written_file_stays()
    {
        var e = Assert.Throws<FileNotDurableException>(() => PrivateFile.Write(Target, "written"u8, _ => throw new IOException("Input/output error")));

        Assert.Equal(Target, e.FilePath);
        Assert.Contains($"{Target} was written, but its directory could not be flushed to disk (Input/output error)", e.Message, StringComparison.Ordinal);
        Assert.Equal("written", File.ReadAllText(Target));
        Assert.Throws<FileNotDurableException>(() => PrivateFile.TryCreate(Target + ".2", "created"u8, _ => throw new IOException("Input/output error")));
        Assert.Equal("created", File.ReadAllText(Target + ".2"));
    }

    [Fact]
    public void The_real_directory_flush_succeeds_on_this_file_system()
    {
        PrivateFile.Write(Target, Encoding.UTF8.GetBytes("content"));
        Assert.True(PrivateFile.TryCreate(Target + ".created", "content"u8));

        Assert.Equal("content", File.ReadAllText(Target));
    }

    [Fact]
    public void A_symlink_planted_at_the_chosen_temporary_name_fails_the_write_without_touching_its_target()
    {
        PrivateFile.Write(Target, "before"u8, _ => { });
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "precious");
        var planted = Target + ".planted.tmp";
        File.CreateSymbolicLink(planted, victim);
        var synced = false;

        Assert.ThrowsAny<IOException>(() => PrivateFile.Write(Target, "after"u8, _ => synced = true, planted));

        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.Equal("before", File.ReadAllText(Target));
        Assert.Equal(victim, new FileInfo(planted).LinkTarget);
        Assert.False(synced);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
