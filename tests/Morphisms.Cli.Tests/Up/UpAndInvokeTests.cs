namespace Morphisms.Cli.Tests.Up;

/// <summary>
/// <c>morph up</c> as a real process, other commands (run in-process) finding it without flags, <c>morph invoke</c>
/// accepting and refusing function certificates (a revoked one too), Ctrl-C stopping it cleanly, and a second start reusing the state.
/// </summary>
[Collection(Kms.MorphismsHomeCollection.Name)]
public sealed class UpAndInvokeTests
{
    [Fact]
    public async Task Up_serves_invoke_verifies_and_refuses_ctrl_c_stops_and_a_second_up_reuses_the_state()
    {
        var home = Directory.CreateTempSubdirectory("morph-up-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            string firstRoot;
            await using (var up = MorphProcess.Start(home, "up"))
            {
                await up.WaitForAsync("running;");
                firstRoot = QuickstartTests.Field(up.Stdout, @"root CA    sha256 ([0-9a-f]{64})");
                Assert.DoesNotContain(await File.ReadAllTextAsync(Path.Combine(home, "data", "kms", "token")), up.Stdout + up.Stderr);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(home, "data", "kms", "token")));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(home, "data", "up.json")));
                var controlTokenFile = Path.Combine(home, "data", "serving-control-token");
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(controlTokenFile));
                Assert.Contains($"token      in {controlTokenFile}", up.Stdout);
                Assert.DoesNotContain((await File.ReadAllTextAsync(controlTokenFile)).Trim(), up.Stdout + up.Stderr);

                // The control API wants its token: loopback alone is not enough.
                var control = QuickstartTests.Field(up.Stdout, @"control API  (\S+)");
                using (var anonymous = new HttpClient())
                using (var refused = await anonymous.GetAsync(new Uri(new Uri(control), "v1/functions")))
                {
                    Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
                }

                // A quickstart on the same data directory is refused by the running stack's lock, and leaves the log
                // of the quickstart that ran before as it was (it used to truncate it before finding the lock taken).
                var quickstartLog = Path.Combine(home, "data", "quickstart.log");
                await File.WriteAllTextAsync(quickstartLog, "an earlier quickstart's line\n");
                var refusedQuickstart = await MorphRunner.RunAsync("quickstart", "--function-dir", Path.Combine(Path.GetDirectoryName(MorphProcess.MorphDll)!, "samples", "signer"));
                Assert.NotEqual(0, refusedQuickstart.ExitCode);
                Assert.Contains("already running", refusedQuickstart.Stderr);
                Assert.StartsWith("an earlier quickstart's line\n", await File.ReadAllTextAsync(quickstartLog));

                // The dev flow types no measurement: `morph up` pinned its KMS expecting the measurement of the KMS it
                // started, and `morph kms trust --dev` expects this installation's dev KMS by itself.
                var kmsMeasurement = "snp:" + Convert.ToHexStringLower(Morphisms.Kms.SelfAttestation.KmsMeasurement.Simulated);
                var upRecord = await File.ReadAllTextAsync(Path.Combine(home, "config", "kms-trust.json"));
                Assert.Matches($"\"expected_measurements\": \\[\\s*\"{kmsMeasurement}\"", upRecord);
                var kmsUrl = QuickstartTests.Field(up.Stdout, @"^KMS +(\S+) ");
                var retrusted = await MorphRunner.RunAsync("kms", "trust", kmsUrl, "--dev");
                Assert.True(retrusted.ExitCode == 0, retrusted.Stderr);
                Assert.Contains($"required     {kmsMeasurement}", retrusted.Stdout);

                // No flags anywhere: the KMS commands and the serving commands find `morph up` through its state files.
                var bundle = Path.Combine(home, "bundle.json");
                await File.WriteAllTextAsync(bundle, """{"files":{}}""");
                var put = await MorphRunner.RunAsync("kms", "kv", "put", "secret/signer", "--data-file", bundle);
                Assert.True(put.ExitCode == 0, put.Stderr);
                var signerDir = Path.Combine(Path.GetDirectoryName(MorphProcess.MorphDll)!, "samples", "signer");
                var deploy = await MorphRunner.RunAsync("deploy", signerDir);
                Assert.True(deploy.ExitCode == 0, deploy.Stderr);
                // Printed typed, as `--expect-measurement` takes it: the simulated TEE attests in SNP's format.
                var measurement = QuickstartTests.Field(deploy.Stdout, "  measurement  snp:([0-9a-f]{96})");
                var listed = await MorphRunner.RunAsync("ls");
                Assert.True(listed.ExitCode == 0, listed.Stderr);
                Assert.Contains("signer", listed.Stdout);

                var shown = await MorphRunner.RunAsync("invoke", "signer", "--path", "/public-key", "--show-attestation", "--expect-measurement", "snp:" + measurement);
                Assert.True(shown.ExitCode == 0, shown.Stderr);
                Assert.Contains($"  measurement  snp:{measurement}", shown.Stdout);
                Assert.Contains("  simulated    true", shown.Stdout);
                Assert.Contains("[pinned root]", shown.Stdout);
                Assert.Contains("\"algorithm\":\"ed25519\"", shown.Stdout);
                Assert.Contains("SIMULATED", shown.Stderr);

                var signed = await MorphRunner.RunAsync("invoke", "signer", "--path", "/sign", "--data", "abc");
                Assert.True(signed.ExitCode == 0, signed.Stderr);
                Assert.Contains("\"signature\"", signed.Stdout);

                // Another measurement than the attested one: the certificate is refused and nothing is sent.
                var wrong = await MorphRunner.RunAsync("invoke", "signer", "--path", "/sign", "--data", "abc", "--expect-measurement", new string('0', 96));
                Assert.Equal(ExitCodes.Rejected, wrong.ExitCode);
                Assert.Contains("certificate REFUSED", wrong.Stderr);
                Assert.Contains("is not the expected", wrong.Stderr);
                Assert.DoesNotContain("signature", wrong.Stdout);

                // No such function: the gateway answers unrecognized_name, and the control API, asked only after that
                // failure, tells a function served under another domain from one not deployed at all.
                var missing = await MorphRunner.RunAsync("invoke", "nosuch");
                Assert.Equal(ExitCodes.Rejected, missing.ExitCode);
                Assert.Contains("morph: no function nosuch is deployed (see `morph ls`)", missing.Stderr);
                var otherDomain = await MorphRunner.RunAsync("invoke", "signer", "--domain", "other.example");
                Assert.Equal(ExitCodes.Rejected, otherDomain.ExitCode);
                Assert.Contains("morph: signer is served at signer.fn.morphisms.local, not signer.other.example: pass --domain fn.morphisms.local", otherDomain.Stderr);

                // The pin names its TEE: the simulated function attests in SNP's format, so its value typed as snp:
                // passes and the very same bytes typed as tdx: (an MRTD) are refused.
                var typed = await MorphRunner.RunAsync("invoke", "signer", "--path", "/public-key", "--expect-measurement", "snp:" + measurement);
                Assert.True(typed.ExitCode == 0, typed.Stderr);
                var otherTee = await MorphRunner.RunAsync("invoke", "signer", "--path", "/sign", "--data", "abc", "--expect-measurement", "tdx:" + measurement);
                Assert.Equal(ExitCodes.Rejected, otherTee.ExitCode);
                Assert.Contains("certificate REFUSED", otherTee.Stderr);
                Assert.Contains($"the instance was attested by snp (measurement snp:{measurement}), and the expected tdx:{measurement} is a tdx measurement", otherTee.Stderr);
                Assert.DoesNotContain("signature", otherTee.Stdout);

                // Deleting the function revokes its certificates into the KMS's CRL, which invoke fetches from the pinned
                // KMS: the still-running instance is refused at once, and is reached only with the check turned off, loudly.
                var deleted = await MorphRunner.RunAsync("kms", "function", "delete", "signer");
                Assert.True(deleted.ExitCode == 0, deleted.Stderr);
                var revoked = await MorphRunner.RunAsync("invoke", "signer", "--path", "/public-key");
                Assert.Equal(ExitCodes.Rejected, revoked.ExitCode);
                Assert.Contains("certificate REFUSED", revoked.Stderr);
                Assert.Contains("is revoked on the KMS's CRL: its revision was retired or its function deleted", revoked.Stderr);
                var unchecked_ = await MorphRunner.RunAsync("invoke", "signer", "--path", "/public-key", "--no-revocation-check");
                Assert.True(unchecked_.ExitCode == 0, unchecked_.Stderr);
                Assert.Contains("WARNING: revocation checking of function certificates is OFF", unchecked_.Stderr);
                Assert.Contains("\"algorithm\":\"ed25519\"", unchecked_.Stdout);

                up.Interrupt();
                Assert.Equal(0, await up.ExitAsync());
                Assert.Contains("stopped", up.Stdout);
                Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
                Assert.False(File.Exists(Path.Combine(home, "data", "serving.json")));
                Assert.False(File.Exists(controlTokenFile));
                Assert.Contains("draining", up.Stderr);
            }

            // Gone: commands say so instead of guessing.
            var noHost = await MorphRunner.RunAsync("invoke", "signer");
            Assert.Equal(ExitCodes.Rejected, noHost.ExitCode);
            Assert.Contains("no `morph up` is running", noHost.Stderr);

            await using (var again = MorphProcess.Start(home, "up"))
            {
                await again.WaitForAsync("running;");
                Assert.Equal(firstRoot, QuickstartTests.Field(again.Stdout, @"root CA    sha256 ([0-9a-f]{64})"));

                // Only one `morph up` per data directory.
                await using (var second = MorphProcess.Start(home, "up"))
                {
                    Assert.Equal(ExitCodes.Rejected, await second.ExitAsync());
                    Assert.Contains("already running", second.Stderr);
                }

                again.Interrupt();
                Assert.Equal(0, await again.ExitAsync());
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}
