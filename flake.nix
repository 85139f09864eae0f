{
  description = "Mycelix FL: Byzantine-resistant federated learning as a Holochain hApp";

  # Holonix (branch main-0.6) provides the pinned Holochain tools: holochain, hc,
  # lair-keystore, kitsune2-bootstrap-srv, and Rust with the wasm32-unknown-unknown target.
  # `nix develop` enters the shell; inside it the commands of README.md work unchanged.
  inputs = {
    holonix.url = "github:holochain/holonix?ref=main-0.6";

    nixpkgs.follows = "holonix/nixpkgs";
    flake-parts.follows = "holonix/flake-parts";
  };

  outputs = inputs@{ flake-parts, ... }: flake-parts.lib.mkFlake { inherit inputs; } {
    systems = builtins.attrNames inputs.holonix.devShells;
    perSystem = { inputs', pkgs, ... }: {
      formatter = pkgs.nixpkgs-fmt;

      devShells.default = pkgs.mkShell {
        inputsFrom = [ inputs'.holonix.devShells.default ];

        packages = with pkgs; [
          nodejs_22 # the web UI and its tests
          binaryen # wasm-opt for release zomes
          python3 # bench/peers.sh (ByzFL and Flower comparison)
        ];

        shellHook = ''
          export PS1='\[\033[1;34m\][mycelix-fl:\w]\$\[\033[0m\] '
          export CARGO_TARGET_DIR="''${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
        '';
      };
    };
  };
}
