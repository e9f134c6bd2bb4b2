using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// An SNP or TDX report describes the whole confidential VM the host runs in, so two functions served from it would
/// show the KMS the same evidence: one's code could log in as the other. A host serves one such function.
/// </summary>
public sealed class ConfidentialVmFunctionTests
{
    // Never contacted: hardware TEEs' reference values are registered by their owners, not by the host.
    private static readonly KmsConnection Kms = new() { Url = new Uri("https://127.0.0.1:1/"), CaSha256 = new string('0', 64), Token = "unused" };

    [Theory]
    [InlineData(FunctionTee.Snp, FunctionTee.Snp)]
    [InlineData(FunctionTee.Snp, FunctionTee.Tdx)]
    [InlineData(FunctionTee.Tdx, FunctionTee.Snp)]
    public async Task A_second_function_on_a_confidential_VM_is_refused_and_changes_nothing(FunctionTee first, FunctionTee second)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms: Kms, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("alpha", "a", first), CancellationToken.None);

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("beta", "a", second), CancellationToken.None));

        Assert.Contains("already serves alpha", error.Message, StringComparison.Ordinal);
        Assert.Equal(["alpha"], host.List().Select(f => f.Name));
    }

    [Fact]
    public async Task An_earlier_revision_on_the_VM_counts_too()
    {
        // alpha's snp revision may still serve a traffic share or drain after alpha moved to an enclave.
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms: Kms, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("alpha", "a", FunctionTee.Snp), CancellationToken.None);
        await host.DeployAsync(functions.Spec("alpha", "b", FunctionTee.Sgx), CancellationToken.None);

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("beta", "a", FunctionTee.Snp), CancellationToken.None));

        Assert.Contains("already serves alpha with tee: snp", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_same_functions_next_revision_and_other_TEEs_are_served_beside_it()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms: Kms, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("alpha", "a", FunctionTee.Snp), CancellationToken.None);

        await host.DeployAsync(functions.Spec("alpha", "b", FunctionTee.Snp), CancellationToken.None);
        await host.DeployAsync(functions.Spec("enclave", "a", FunctionTee.Sgx), CancellationToken.None);

        // Once it is removed, the VM may serve another.
        await host.RemoveAsync("alpha", CancellationToken.None);
        await host.DeployAsync(functions.Spec("beta", "a", FunctionTee.Tdx), CancellationToken.None);
        Assert.Equal(["beta", "enclave"], host.List().Select(f => f.Name));
    }
}
