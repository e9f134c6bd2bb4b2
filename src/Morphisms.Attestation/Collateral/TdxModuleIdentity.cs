namespace Morphisms.Attestation.Collateral;

/// <summary>
/// The expected signer and attributes of the TDX module (<c>tdxModule</c>) or of one major version of
/// it (<c>tdxModuleIdentities[]</c>, id <c>TDX_01</c>, <c>TDX_03</c>, …, with its own TCB levels).
/// </summary>
/// <param name="Id">The identity id (<c>TDX_01</c>…); null for the plain <c>tdxModule</c> entry.</param>
/// <param name="MrSigner">Expected MRSIGNERSEAM, 48 bytes (all zero for Intel-signed modules).</param>
/// <param name="Attributes">Expected SEAMATTRIBUTES, 8 bytes.</param>
/// <param name="AttributesMask">Mask for <paramref name="Attributes"/>, 8 bytes.</param>
/// <param name="TcbLevels">Module TCB levels, highest ISV SVN first (empty for the plain <c>tdxModule</c> entry).</param>
public sealed record TdxModuleIdentity(
    string? Id,
    byte[] MrSigner,
    byte[] Attributes,
    byte[] AttributesMask,
    IReadOnlyList<EnclaveTcbLevel> TcbLevels);
