namespace Morphisms.Attestation;

/// <summary>
/// <see cref="PrivateFile"/> wrote a file and published it under its name, but could not flush its directory to disk:
/// the file is there whole now, yet a crash or power cut may still lose its name. Callers say so rather than treat it
/// as written durably, or as not written at all (the file must not be removed).
/// </summary>
public sealed class FileNotDurableException(string path, Exception inner)
    : IOException($"{path} was written, but its directory could not be flushed to disk ({inner.Message}): it may not survive a crash or power cut", inner)
{
    /// <summary>The file, written and in place.</summary>
    public string FilePath { get; } = path;
}
