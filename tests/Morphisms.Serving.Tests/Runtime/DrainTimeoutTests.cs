using Morphisms.Agent;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

/// <summary>
/// The host kills an instance that has not exited <see cref="SupervisorOptions.DrainTimeout"/> after SIGTERM. Its agent
/// gives the app its own drain timeout, then the connections still open <see cref="Agent.Agent.ConnectionDrain"/>, and
/// then wipes the secrets: a host that killed it at the same 10 s cut that wipe short.
/// </summary>
public sealed class DrainTimeoutTests
{
    [Fact]
    public void The_host_waits_longer_than_the_agent_drains_its_app_and_connections()
    {
        var agent = new AgentOptions { Kms = new Uri("https://kms.invalid"), Function = "fn", App = ["app"] };
        var host = new SupervisorOptions().DrainTimeout;
        var agentDrain = agent.DrainTimeout + Agent.Agent.ConnectionDrain;

        // A margin for what the agent does besides waiting (signalling, the wipe itself, its own exit) on a busy machine.
        Assert.True(host >= agentDrain + TimeSpan.FromSeconds(2), $"the host kills after {host.TotalSeconds} s; the agent may take {agentDrain.TotalSeconds} s");
    }
}
