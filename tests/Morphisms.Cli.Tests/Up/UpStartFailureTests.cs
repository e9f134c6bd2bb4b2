using Morphisms.Cli.Commands.Up;

namespace Morphisms.Cli.Tests.Up;

/// <summary>
/// <c>morph up</c> (a real process, so nothing here touches this process's environment) failing to start: a corrupt
/// trust store, serving that cannot start, a corrupt simulated TEE or dev key file. Each ends in one line naming the
/// cause and exit 1, with nothing left running and no state file claiming otherwise. And a second stack started at the
/// same moment on the same data directory, refused; the lock, not a stale state file, says whether one runs.
/// </summary>
public sealed class UpStartFailureTests
{
    [Fact]
    public async Task A_corrupt_trust_store_or_serving_failing_to_start_is_a_message_not_a_crash()
    {
        var home = Directory.CreateTempSubdirectory("morph-up-fail-").FullName;
        try
        {
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            Directory.CreateDirectory(Path.GetDirectoryName(trustFile)!);
            await File.WriteAllTextAsync(trustFile, "[1, 2");
            await using (var up = MorphProcess.Start(home, "up"))
            {
                Assert.Equal(ExitCodes.Rejected, await up.ExitAsync());
                Assert.Contains($"morph: the KMS could not be pinned: {trustFile}: not a Morphisms trust store", up.Stderr);
                AssertNoStackTrace(up.Stderr);
                Assert.Equal("[1, 2", await File.ReadAllTextAsync(trustFile));
                Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
            }

            File.Delete(trustFile);
            var missing = Path.Combine(home, "no-such-morph-init");
            await using (var up = MorphProcess.Start(home, new Dictionary<string, string> { ["MORPH_INIT"] = missing }, "up"))
            {
                Assert.Equal(ExitCodes.Rejected, await up.ExitAsync());
                Assert.Contains($"morph: serving could not start: runtime: MORPH_INIT={missing}: no such file", up.Stderr);
                AssertNoStackTrace(up.Stderr);
                Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
            }
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_quickstart_whose_data_directory_cannot_be_made_is_a_message_not_a_crash()
    {
        var home = Directory.CreateTempSubdirectory("morph-quickstart-fail-").FullName;
        try
        {
            // A file where the data directory should be: refused even for root, unlike a read-only directory.
            var data = Path.Combine(home, "data");
            await File.WriteAllTextAsync(data, "not a directory");
            await using var quickstart = MorphProcess.Start(home, "quickstart");
            Assert.Equal(ExitCodes.UsageOrInput, await quickstart.ExitAsync());
            Assert.Contains($"morph: cannot write the data directory {data}", quickstart.Stderr);
            AssertNoStackTrace(quickstart.Stderr);
            Assert.Equal("not a directory", await File.ReadAllTextAsync(data));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_corrupt_simulated_tee_is_a_message_naming_it_not_a_crash()
    {
        var home = Directory.CreateTempSubdirectory("morph-up-fail-").FullName;
        try
        {
            var teeFile = Path.Combine(home, "data", "simulated-tee", "simulated-tee.json");
            Directory.CreateDirectory(Path.GetDirectoryName(teeFile)!);
            await File.WriteAllTextAsync(teeFile, "{not json");
            await using var up = MorphProcess.Start(home, "up");
            Assert.Equal(ExitCodes.Rejected, await up.ExitAsync());
            Assert.Contains($"morph: the installation's simulated TEE cannot be loaded: {teeFile}: not a simulated TEE's state file", up.Stderr);
            AssertNoStackTrace(up.Stderr);
            Assert.Equal("{not json", await File.ReadAllTextAsync(teeFile));
            Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_corrupt_dev_key_file_is_a_message_naming_it_not_a_crash()
    {
        var home = Directory.CreateTempSubdirectory("morph-up-fail-").FullName;
        try
        {
            await using (var first = MorphProcess.Start(home, "up"))
            {
                await first.WaitForAsync("running;");
                first.Interrupt();
                Assert.Equal(0, await first.ExitAsync());
            }

            var keyFile = Path.Combine(home, "data", "kms", "kms.db.dev-keys.json");
            await File.WriteAllTextAsync(keyFile, "{");
            await using var up = MorphProcess.Start(home, "up");
            Assert.Equal(ExitCodes.Rejected, await up.ExitAsync());
            Assert.Contains($"morph: the KMS could not start: dev mode: the dev key file '{keyFile}' is not JSON", up.Stderr);
            AssertNoStackTrace(up.Stderr);
            Assert.Equal("{", await File.ReadAllTextAsync(keyFile));
            Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Two_stacks_started_together_on_one_data_directory_one_runs_and_the_other_is_refused()
    {
        // Both start on an empty data directory at the same moment: without the lock both find no up.json (it is
        // written only once everything runs) and both initialise the KMS, the second overwriting the first's keys.
        var home = Directory.CreateTempSubdirectory("morph-up-twice-").FullName;
        try
        {
            await using var first = MorphProcess.Start(home, "up");
            await using var second = MorphProcess.Start(home, "up");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(Started(first) && Started(second)))
            {
                Assert.True(DateTime.UtcNow < deadline, $"neither ran nor stopped in 60 s:\n{first.Stdout}{first.Stderr}\n{second.Stdout}{second.Stderr}");
                await Task.Delay(50);
            }

            var (winner, loser) = first.HasExited ? (second, first) : (first, second);
            Assert.False(winner.HasExited, $"both stopped:\n{first.Stderr}\n{second.Stderr}");
            Assert.True(loser.HasExited, $"both run on one data directory:\n{first.Stdout}\n{second.Stdout}");
            Assert.Equal(ExitCodes.Rejected, await loser.ExitAsync());
            Assert.Contains($"morph: morph up or morph quickstart is already running on the data directory {Path.Combine(home, "data")}", loser.Stderr);
            AssertNoStackTrace(loser.Stderr);
            Assert.DoesNotContain("running;", loser.Stdout);

            // The refused one touched nothing the running one owns: it stops cleanly, and the lock goes with it.
            winner.Interrupt();
            Assert.Equal(0, await winner.ExitAsync());
            await using var again = MorphProcess.Start(home, "up");
            await again.WaitForAsync("running;");
            again.Interrupt();
            Assert.Equal(0, await again.ExitAsync());
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }

        static bool Started(MorphProcess morph) => morph.HasExited || morph.Stdout.Contains("running;", StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stale_state_file_naming_a_live_pid_does_not_block_a_start_once_the_lock_is_taken()
    {
        // A stack that died left up.json behind, and the system has since given its pid to another live process: the lock
        // is free, so nothing runs on this data directory and the start goes ahead, overwriting the stale file.
        var home = Directory.CreateTempSubdirectory("morph-up-stale-").FullName;
        using var sleeper = System.Diagnostics.Process.Start("sleep", "300");
        try
        {
            var stateFile = Path.Combine(home, "data", "up.json");
            Directory.CreateDirectory(Path.GetDirectoryName(stateFile)!);
            new UpStateFile("https://127.0.0.1:1/", "ca.pem", new string('0', 64), "token", "127.0.0.1:2", "localhost", "http://127.0.0.1:3/", sleeper.Id)
                .Write(stateFile);

            await using var up = MorphProcess.Start(home, "up");
            await up.WaitForAsync("running;");
            Assert.Contains($"\"pid\": {up.Pid}", await File.ReadAllTextAsync(stateFile));
            up.Interrupt();
            Assert.Equal(0, await up.ExitAsync());
            Assert.False(File.Exists(stateFile));
        }
        finally
        {
            sleeper.Kill();
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_lock_file_that_cannot_be_opened_is_said_as_such_not_as_a_stack_already_running()
    {
        // Only a lock held by another process means another stack; any other failure to open the file (here a symlink
        // loop, ELOOP, as a read-only file system or a full disk would fail) is named with the path and the error.
        var home = Directory.CreateTempSubdirectory("morph-up-lockfail-").FullName;
        try
        {
            var lockFile = Path.Combine(home, "data", "up.lock");
            Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
            File.CreateSymbolicLink(lockFile, lockFile);

            await using var up = MorphProcess.Start(home, "up");
            Assert.Equal(ExitCodes.Rejected, await up.ExitAsync());
            Assert.Contains($"morph: the lock file {lockFile} cannot be opened: ", up.Stderr);
            Assert.DoesNotContain("already running", up.Stderr);
            AssertNoStackTrace(up.Stderr);
            Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    private static void AssertNoStackTrace(string stderr)
    {
        Assert.DoesNotContain("Unhandled exception", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }
}
