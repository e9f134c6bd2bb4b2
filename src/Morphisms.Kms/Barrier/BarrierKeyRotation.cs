using System.Text.Json.Serialization;
using Morphisms.Kms.Audit;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// Automatic rotation of the barrier key (Vault's <c>sys/rotate/config</c>): every barrier encryption uses a random
/// 96-bit nonce, and NIST SP 800-38D allows at most 2^32 such encryptions per key. The encryptions of the active term
/// are counted (<see cref="Keyring.CountEncryption"/>); once they reach <see cref="RotationConfig.MaxOperations"/>,
/// or the term is older than <see cref="RotationConfig.Interval"/>, a background loop adds a term — one rotation
/// however many requests cross the limit, and never on a request's path.
/// <para>
/// The count survives restarts, step-downs and failovers: the loop persists it (<see cref="EncryptionsPath"/>, under
/// the barrier) whenever another half of <see cref="KmsServerOptions.BarrierEncryptionsPersistEvery"/> encryptions
/// has been made, at most every <see cref="KmsServerOptions.BarrierEncryptionsPersistInterval"/> otherwise, and once
/// more when the state closes (seal, step-down); whoever loads the keyring next (this node unsealing, a standby being
/// promoted) assumes the persisted count plus a whole <c>BarrierEncryptionsPersistEvery</c>, more than a crash can
/// have left unpersisted. Only the active node has this state, so only it counts and writes; a deposed node's writes
/// are fenced and fail, which the margin covers.
/// </para>
/// </summary>
internal sealed class BarrierKeyRotation
{
    /// <summary>The persisted encryption count of the active term.</summary>
    public const string EncryptionsPath = "core/keyring-encryptions";

    private readonly BarrierStorage _barrier;
    private readonly Func<uint, DateTimeOffset, Task<Keyring?>> _rotateFrom;
    private readonly AuditRecorder? _audit;
    private readonly TextWriter _log;
    private readonly TimeProvider _time;
    private readonly long _persistEvery;
    private readonly long _persistStep;
    private readonly TimeSpan _persistInterval;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly SemaphoreSlim _configLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private RotationConfig _config;
    private Task _loop = Task.CompletedTask;
    private volatile bool _skipFinalPersist;

    // What the loop last persisted (only the loop writes the record).
    private uint _persistedTerm;
    private long _persisted = -1;

    private BarrierKeyRotation(BarrierStorage barrier, RotationConfig config, Func<uint, DateTimeOffset, Task<Keyring?>> rotateFrom, AuditRecorder? audit, KmsServerOptions options)
    {
        _barrier = barrier;
        _config = config;
        _rotateFrom = rotateFrom;
        _audit = audit;
        _log = options.WarningWriter ?? Console.Error;
        _time = options.TimeProvider;
        _persistEvery = Math.Max(1, options.BarrierEncryptionsPersistEvery);
        _persistStep = Math.Max(1, _persistEvery / 2);
        _persistInterval = options.BarrierEncryptionsPersistInterval;
    }

    /// <summary>The rotation policy in force.</summary>
    public RotationConfig Config => Volatile.Read(ref _config);

    /// <summary>
    /// Reads the policy and the persisted count of the active term, adds the margin to the keyring's count, and hooks
    /// the barrier's encryptions. <see cref="Start"/> starts the loop.
    /// </summary>
    public static async Task<BarrierKeyRotation> LoadAsync(BarrierStorage barrier, Func<uint, DateTimeOffset, Task<Keyring?>> rotateFrom, AuditRecorder? audit, KmsServerOptions options, CancellationToken ct)
    {
        var config = (await barrier.GetJsonAsync<RotationConfigDocument>(RotationConfig.StoragePath, ct).ConfigureAwait(false))?.ToConfig() ?? RotationConfig.Default;
        var rotation = new BarrierKeyRotation(barrier, config, rotateFrom, audit, options);
        var keyring = barrier.Keyring;
        var stored = await barrier.GetJsonAsync<EncryptionsDocument>(EncryptionsPath, ct).ConfigureAwait(false);

        // A record of another term: the rotation to the active one happened after the last persist, so what the active
        // term encrypted since is unpersisted, which the margin bounds as for any other crash.
        var persisted = stored is not null && stored.Term == keyring.ActiveTerm ? stored.Encryptions : 0;
        keyring.AssumeEncryptions(persisted + rotation._persistEvery);
        barrier.EncryptionCounted = rotation.OnEncryption;

        // Stored before the state serves, not by the loop later: a crash before the loop's first write must not start
        // the next unseal from the same record again (each start's margin would then cover less than both sessions
        // made), and a request answered after the unseal sees the store as this write left it.
        await rotation.PersistAsync(ct).ConfigureAwait(false);
        return rotation;
    }

    /// <summary>Starts the background loop (and checks at once: the assumed count may already be past the limit).</summary>
    public void Start()
    {
        _loop = Task.Run(RunAsync);
        Wake();
    }

    /// <summary>
    /// Stops the loop, which persists the count one last time unless <paramref name="persist"/> is false (a restore:
    /// the store is about to be replaced), waiting at most <paramref name="bound"/> (on the clock). Never faults:
    /// sealing awaits it.
    /// </summary>
    public async Task StopAsync(TimeSpan bound, bool persist = true)
    {
        if (!persist)
        {
            _skipFinalPersist = true;
        }

        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        await Task.WhenAny(_loop, Task.Delay(bound, _time)).ConfigureAwait(false);
    }

    /// <summary>
    /// Replaces the policy (fields left null keep their value), stored before it applies. The caller validated the
    /// values. Concurrent updates apply one after the other.
    /// </summary>
    public async Task<RotationConfig> UpdateConfigAsync(long? maxOperations, TimeSpan? interval, bool? enabled, CancellationToken ct)
    {
        await _configLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var current = Config;
            var next = new RotationConfig(maxOperations ?? current.MaxOperations, interval ?? current.Interval, enabled ?? current.Enabled);
            await _barrier.PutJsonAsync(RotationConfig.StoragePath, RotationConfigDocument.From(next), ct).ConfigureAwait(false);
            Volatile.Write(ref _config, next);

            // A lower limit may already be reached.
            Wake();
            return next;
        }
        finally
        {
            _configLock.Release();
        }
    }

    /// <summary>On the request path, after each encryption: only a comparison, and a signal at the marks.</summary>
    private void OnEncryption(long count)
    {
        // Counts are exact (Interlocked), so each mark is seen by exactly one encryption: one wake per mark.
        if (count % _persistStep == 0 || count == Volatile.Read(ref _config).MaxOperations)
        {
            Wake();
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled: the loop will look at the count anyway.
        }
    }

    private async Task RunAsync()
    {
        var stop = _stop.Token;
        Task? wake = null;
        while (!stop.IsCancellationRequested)
        {
            using (var tick = CancellationTokenSource.CreateLinkedTokenSource(stop))
            {
                wake ??= _wake.WaitAsync(stop);
                var woke = await Task.WhenAny(wake, Task.Delay(_persistInterval, _time, tick.Token)).ConfigureAwait(false);
                await tick.CancelAsync().ConfigureAwait(false);
                if (woke == wake)
                {
                    wake = null;
                }
            }

            if (stop.IsCancellationRequested)
            {
                break;
            }

            await TickAsync().ConfigureAwait(false);
        }

        // The state is closing (seal, step-down): requests have drained, so this is the final count.
        if (_skipFinalPersist)
        {
            return;
        }

        try
        {
            await PersistAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (!_barrier.Wiped)
        {
            // A step-down's writes are fenced: the next active node assumes the margin, which covers this.
            await _log.WriteLineAsync($"WARNING! the barrier key's encryption count was not persisted at close ({e.GetType().Name}: {e.Message}); the next unseal or active node adds its safety margin").ConfigureAwait(false);
        }
        catch
        {
            // Wiped (a restore): nothing may be written any more, and the store is being replaced.
        }
    }

    private async Task TickAsync()
    {
        try
        {
            await PersistAsync().ConfigureAwait(false);
            var config = Config;
            var keyring = _barrier.Keyring;
            var now = _time.GetUtcNow();
            if (!config.Enabled || DueReason(keyring, config, now) is not { } reason)
            {
                return;
            }

            // Only from the term that is due: a sys/rotate that got there first already replaced it.
            if (await _rotateFrom(keyring.ActiveTerm, now).ConfigureAwait(false) is not { } next)
            {
                return;
            }

            var notice = $"barrier key rotated automatically: term {next.ActiveTerm} installed, term {keyring.ActiveTerm} {reason}";
            _audit?.Notice(notice);
            await _log.WriteLineAsync("NOTICE: " + notice).ConfigureAwait(false);
            await PersistAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (!_barrier.Wiped)
        {
            // Storage unreachable, or this node deposed (its state closes shortly): the next tick tries again.
            await _log.WriteLineAsync($"WARNING! barrier key rotation check failed, retrying in {Http.Durations.ToGoString(_persistInterval)}: {e.GetType().Name}: {e.Message}").ConfigureAwait(false);
        }
        catch
        {
            // Sealing or restoring: the loop is about to stop.
        }
    }

    private static string? DueReason(Keyring keyring, RotationConfig config, DateTimeOffset now)
    {
        if (keyring.Encryptions >= config.MaxOperations)
        {
            return $"reached {keyring.Encryptions} encryptions (max_operations {config.MaxOperations})";
        }

        var installed = keyring.Terms.Single(t => t.Term == keyring.ActiveTerm).InstallTime;
        return config.Interval > TimeSpan.Zero && now - installed >= config.Interval
            ? $"installed at {Http.Timestamps.Rfc3339(installed)} reached the rotation interval {Http.Durations.ToGoString(config.Interval)}"
            : null;
    }

    /// <summary>Stores the active term's count, when it changed since the last time.</summary>
    private async Task PersistAsync(CancellationToken ct = default)
    {
        var keyring = _barrier.Keyring;
        var count = keyring.Encryptions;
        if (keyring.ActiveTerm == _persistedTerm && count == _persisted)
        {
            return;
        }

        // This write is itself an encryption under the term: stored as already made, so an idle KMS writes no more.
        var value = count + 1;
        await _barrier.PutJsonAsync(EncryptionsPath, new EncryptionsDocument(keyring.ActiveTerm, value), ct).ConfigureAwait(false);
        (_persistedTerm, _persisted) = (keyring.ActiveTerm, value);
    }

    private sealed record EncryptionsDocument(
        [property: JsonPropertyName("term")] uint Term,
        [property: JsonPropertyName("encryptions")] long Encryptions);
}

/// <summary>The automatic rotation policy of the barrier key (<c>sys/rotate/config</c>).</summary>
/// <param name="MaxOperations">Encryptions under one term after which a new term is added.</param>
/// <param name="Interval">The age of the active term after which a new one is added; zero: no time-based rotation.</param>
/// <param name="Enabled">Whether rotations happen automatically; counting goes on either way.</param>
internal sealed record RotationConfig(long MaxOperations, TimeSpan Interval, bool Enabled)
{
    /// <summary>Where the policy is stored (under the barrier).</summary>
    public const string StoragePath = "core/rotate-config";

    /// <summary>Vault's default and upper bound: about 0.9 · 2^32, under NIST SP 800-38D's 2^32 random-nonce encryptions per key.</summary>
    public const long MaxOperationsLimit = 3_865_470_566;

    /// <summary>Vault's lower bound on <see cref="MaxOperations"/>.</summary>
    public const long MinMaxOperations = 1_000_000;

    /// <summary>Vault's lower bound on a non-zero <see cref="Interval"/>.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromHours(24);

    /// <summary>The policy until one is configured.</summary>
    public static RotationConfig Default { get; } = new(MaxOperationsLimit, TimeSpan.Zero, true);
}

/// <summary>The stored form of <see cref="RotationConfig"/>.</summary>
internal sealed record RotationConfigDocument(
    [property: JsonPropertyName("max_operations")] long MaxOperations,
    [property: JsonPropertyName("interval_seconds")] long IntervalSeconds,
    [property: JsonPropertyName("enabled")] bool Enabled)
{
    public static RotationConfigDocument From(RotationConfig config) =>
        new(config.MaxOperations, (long)config.Interval.TotalSeconds, config.Enabled);

    public RotationConfig ToConfig() => new(MaxOperations, TimeSpan.FromSeconds(IntervalSeconds), Enabled);
}
